"""The wheel is a whole service: an installed `claimledger` migrates and loads the demo
without this source tree."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from app.migrate import alembic_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel built offline from a copy of the tree, and the build's verbose output."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"  # a copy: building in place would leave build/ in the tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("app", "migrations"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # -v: setuptools' warnings about the configuration only show in the verbose output.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    return next((tmp / "dist").glob("claimledger-*.whl")), built.stdout + built.stderr


def test_build_wheel_without_configuration_warnings(wheel):
    _, output = wheel
    warnings = [line.strip() for line in output.splitlines()
                if "BuildBackendWarning" in line or "DeprecationWarning" in line]
    assert warnings == []


def test_wheel_ships_the_migrations_and_the_demo_data(wheel):
    names = zipfile.ZipFile(wheel[0]).namelist()
    shipped = sorted(n.rsplit("/", 1)[-1] for n in names
                     if n.startswith("app/_migrations/versions/"))
    assert shipped == sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert "app/_migrations/env.py" in names and "app/_migrations/script.py.mako" in names
    assert "app/data/demo.json" in names


def test_installed_wheel_migrates_and_loads_the_demo(wheel, tmp_path):
    # A fresh virtualenv outside the source tree: the wheel in its own site-packages, the
    # dependencies borrowed from this one through a .pth line (offline, nothing downloaded).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel[0])], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]

    database = tmp_path / "installed.db"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "CLAIMLEDGER_DATABASE_URL": f"sqlite:///{database}",
           **({"TMPDIR": os.environ["TMPDIR"]} if "TMPDIR" in os.environ else {})}
    where = subprocess.run([str(python), "-c", "import app; print(app.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(site)), where  # the installed copy, not ours
    demo = subprocess.run([str(venv / "bin" / "claimledger"), "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "demo loaded" in demo.stdout

    claims = len(json.loads((ROOT / "app" / "data" / "demo.json").read_text())["claims"])
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            stored = conn.exec_driver_sql("SELECT count(*) FROM claim").scalar()
    finally:
        engine.dispose()
    assert {"claim", "attribution", "source", "event", "claim_band"} <= tables
    assert version == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert stored == claims
