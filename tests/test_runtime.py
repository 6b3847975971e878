"""app/server/heap.py: how a server process manages its heap once started."""

import json
import subprocess
import sys

from app.server.heap import YOUNG_THRESHOLD


def test_settle_heap_freezes_startup_and_collects_young_objects_less_often():
    """Run in a process of its own: freezing the test runner's heap would change every
    test after this one."""
    probe = (
        "import gc, json\n"
        "before = gc.get_threshold()\n"
        "from app.server.heap import settle_heap\n"
        "settle_heap()\n"
        "print(json.dumps({'before': before, 'after': gc.get_threshold(),\n"
        "                  'frozen': gc.get_freeze_count()}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["before"][0] < YOUNG_THRESHOLD
    assert seen["after"] == [YOUNG_THRESHOLD, *seen["before"][1:]]
    assert seen["frozen"] > 1000  # the modules imported so far are out of the collector's reach
