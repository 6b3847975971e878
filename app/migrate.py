"""Alembic, driven from code: upgrade, downgrade and the readiness check use this."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

# The source tree's migrations/, or in an installed wheel the copy shipped as
# app/_migrations (pyproject.toml).
_SOURCE_TREE = Path(__file__).resolve().parent.parent / "migrations"
_IN_WHEEL = Path(__file__).resolve().parent / "_migrations"
MIGRATIONS = _SOURCE_TREE if _SOURCE_TREE.is_dir() else _IN_WHEEL


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


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions in the code that the database has not applied yet."""
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if set(script.get_heads()) == current:
        return []
    pending = []
    for rev in script.walk_revisions():
        if rev.revision in current:
            break
        pending.append(rev.revision)
    return pending
