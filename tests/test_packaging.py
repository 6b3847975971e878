"""The wheel is a whole service: an installed `claimledger` migrates without this tree."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from app.migrate import alembic_config

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_migrations_and_migrates_from_them(tmp_path):
    source = tmp_path / "src"  # a copy: building in place would leave build/ in the tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("app", "migrations"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("claimledger-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rsplit("/", 1)[-1] for n in names
                     if n.startswith("app/_migrations/versions/"))
    assert shipped == sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert "app/_migrations/env.py" in names and "app/_migrations/script.py.mako" in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, timeout=300)
    database = tmp_path / "installed.db"
    migrated = subprocess.run(
        [sys.executable, "-c", "import app, app.migrate as m; print(app.__file__); "
         f"m.upgrade('sqlite:///{database}')"],
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert migrated.stdout.strip().startswith(str(site))  # the installed copy, not this tree
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()
    assert {"claim", "attribution", "source", "event", "claim_band"} <= tables
    assert version == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
