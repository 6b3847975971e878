"""app/server/heap.py: how a server process manages its heap once started."""

import json
import os
import subprocess
import sys

import pytest

from app.config import Settings
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


@pytest.mark.parametrize("settling", [True, False])
def test_a_served_app_settles_its_heap_unless_heap_settling_is_off(settings: Settings, settling):
    """A process of its own, as above: the app's lifespan settles the heap of its process."""
    probe = (
        "import gc, json\n"
        "from fastapi.testclient import TestClient\n"
        "from app.main import create_app\n"
        "before = gc.get_threshold()\n"
        "with TestClient(create_app()):\n"
        "    seen = {'before': before, 'after': gc.get_threshold()}\n"
        "print(json.dumps(seen))\n")
    env = {**os.environ, "CLAIMLEDGER_DATABASE_URL": settings.database_url,
           "CLAIMLEDGER_WRITER_PROCESS": "false",
           "CLAIMLEDGER_HEAP_SETTLING": "true" if settling else "false"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, check=True, timeout=60)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    expected = [YOUNG_THRESHOLD, *seen["before"][1:]] if settling else seen["before"]
    assert seen["after"] == expected
