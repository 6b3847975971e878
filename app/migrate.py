"""Alembic, driven from code: upgrade, downgrade and the readiness check use this."""

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

# An installed wheel's copy, shipped as app/_migrations (pyproject.toml), else the source
# tree's migrations/ (checkouts and editable installs).
_IN_WHEEL = Path(__file__).resolve().parent / "_migrations"
_SOURCE_TREE = Path(__file__).resolve().parent.parent / "migrations"
MIGRATIONS = _IN_WHEEL if (_IN_WHEEL / "env.py").is_file() else _SOURCE_TREE


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@lru_cache(maxsize=1)
def _revisions() -> tuple[frozenset[str], tuple[str, ...]]:
    """The code's head revisions, and every revision newest first. Read once: the
    migration scripts do not change while the process runs, and parsing them was most of
    a /readyz probe (bench/RESULTS.md, "Revisions read once")."""
    script = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(script.get_heads()), tuple(r.revision for r in script.walk_revisions())


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions in the code that the database has not applied yet."""
    heads, revisions = _revisions()
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if heads == current:
        return []
    pending = []
    for revision in revisions:
        if revision in current:
            break
        pending.append(revision)
    return pending
