"""The README cannot drift: its tour runs as pasted, its configuration table is Settings'."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from app import demo
from app.config import Settings
from app.db import Database
from app.domain import keys
from app.models import Role
from tests.live_server import ROOT, live_server  # noqa: F401

README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR_URL = "U=http://127.0.0.1:8000"  # the tour's own line; the test points it at its server


def section(title: str) -> str:
    """The README's `## title` section, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else len(README)]


def tour_script() -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```$", section("API tour"), re.S | re.M)
    assert blocks, "the tour has no shell blocks"
    return "\n".join(blocks)


def test_readme_tour_curls_all_fail_on_errors():
    # Every curl says -f, so an error status fails the tour instead of printing a problem.
    calls = re.findall(r"\bcurl((?:\s+-[A-Za-z]+)+)", tour_script())
    assert calls and len(calls) == tour_script().count("curl ")
    assert [flags for flags in calls if "f" not in flags.replace("-", " ").split()[0]] == []


@pytest.fixture
def demo_admin_key(settings: Settings) -> str:
    """What `make run` does before serving: the demo ledger and an admin key."""
    database = Database(settings)
    try:
        with database.write_session() as session:
            demo.load_demo(session)
            secret = keys.create_key(session, name="local-admin", role=Role.admin,
                                     actor="cli").secret
            session.commit()
    finally:
        database.dispose()
    return secret


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour needs curl on PATH")
def test_readme_tour_runs_as_pasted(demo_admin_key, live_server, tmp_path):  # noqa: F811
    script = tour_script()
    assert script.count(TOUR_URL) == 1
    (tmp_path / "tour.sh").write_text(script.replace(TOUR_URL, f"U={live_server.url}"))
    # -u: a variable the tour never set fails it; pipefail: so does a curl inside $(...).
    ran = subprocess.run(["bash", "-euo", "pipefail", "tour.sh"], cwd=tmp_path,
                         env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
                              "LANG": "C.UTF-8", "CLAIMLEDGER_KEY": demo_admin_key},
                         capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, (ran.stdout[-3000:], ran.stderr[-3000:])
    assert "idempotent-replayed: true" in ran.stdout.lower()  # the tour's replayed POST
    assert re.search(r'"summary":\{"received":2,', ran.stdout)  # the ingest batch it wrote


def test_readme_configuration_lists_every_setting_with_its_default():
    rows = re.findall(r"^\| `CLAIMLEDGER_([A-Z0-9_]+)` \| `([^`]*)` \|", section("Configuration"),
                      re.M)
    documented = {name.lower(): default for name, default in rows}
    assert len(documented) == len(rows), "a variable is listed twice"
    assert sorted(documented) == sorted(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        value = TypeAdapter(field.annotation).validate_python(documented[name])
        assert value == field.default, (name, documented[name], field.default)


def test_readme_where_things_are_names_files_that_exist():
    named = set(re.findall(r"`((?:app|tests|bench|migrations)/[\w./]*)`",
                           section("Where things are")))
    assert named
    assert sorted(p for p in named if not (ROOT / p.rstrip("/")).exists()) == []
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "app").rglob("*.py")
               if p.name != "__init__.py" and "_migrations" not in p.parts}
    folders = {n.rstrip("/") for n in named if n.endswith("/")}
    assert sorted(m for m in modules
                  if m not in named and m.rsplit("/", 1)[0] not in folders) == []
    assert Path(ROOT / "bench" / "RESULTS.md").exists()
