"""Migrations: up, down and up again on an empty database, and they match the models."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers every table on the metadata)
from app import migrate
from app.config import Settings
from app.main import create_app

# Objects that exist only in migrations on purpose (the full-text search table, its shadow
# tables, triggers and indexes), and Alembic's own bookkeeping.
IGNORED_PREFIXES = ("claim_search",)
IGNORED_TABLES = {"alembic_version"}


def _ignored_name(name: str | None) -> bool:
    return name is not None and (name in IGNORED_TABLES or name.startswith(IGNORED_PREFIXES))


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    if _ignored_name(name):
        return False
    table = getattr(obj, "table", None)
    return not (table is not None and _ignored_name(table.name))


def include_name(name, type_, parent_names) -> bool:
    if _ignored_name(name):
        return False
    return not _ignored_name(parent_names.get("table_name"))


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {t for t in sa.inspect(engine).get_table_names() if not _ignored_name(t)}
    finally:
        engine.dispose()


def current_heads(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def differences(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                "compare_server_default": False,
                "include_object": include_object,
                "include_name": include_name,
                "render_as_batch": True,
            })
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def test_migrate_upgrade_downgrade_upgrade_on_empty_database(databases):
    url = databases.empty_url()
    assert tables(url) == set()
    heads = set(ScriptDirectory.from_config(migrate.alembic_config(url)).get_heads())
    assert len(heads) == 1, f"the migration history has branched: {heads}"
    expected = {t.name for t in SQLModel.metadata.sorted_tables}

    migrate.upgrade(url)
    assert tables(url) == expected
    assert current_heads(url) == heads

    migrate.downgrade(url, "base")
    assert tables(url) == set()
    assert current_heads(url) == set()

    migrate.upgrade(url)
    assert tables(url) == expected
    assert current_heads(url) == heads
    engine = sa.create_engine(url)
    try:
        assert migrate.pending_migrations(engine) == []
    finally:
        engine.dispose()


def test_migrate_head_matches_models(databases):
    url = databases.empty_url()
    migrate.upgrade(url)
    diff = differences(url)
    assert diff == [], "models and migrations differ:\n" + "\n".join(map(str, diff))


def test_migrate_each_step_downgrades_cleanly(databases):
    url = databases.empty_url()
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        migrate.upgrade(url, revision)
    for revision in reversed(revisions):
        migrate.downgrade(url, "-1")
        assert revision not in current_heads(url)
    assert tables(url) == set()


def test_readyz_fails_while_migrations_are_behind(databases):
    """/readyz is 503 naming the missing revisions until they are applied, then 200."""
    url = databases.empty_url()
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    head = script.get_current_head()
    previous = script.get_revision(head).down_revision
    migrate.upgrade(url, previous)
    with TestClient(create_app(Settings(database_url=url)), raise_server_exceptions=False) as c:
        response = c.get("/readyz")
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "migrating"
        assert head in response.json()["detail"] and previous not in response.json()["detail"]
        migrate.upgrade(url)
        response = c.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"


def test_migration_0011_drops_only_the_band_rows_of_merged_claims(databases):
    """Claims merged before merges deleted their band rows (migration 0011)."""
    url = databases.empty_url()
    migrate.upgrade(url, "0010")
    engine = sa.create_engine(url)
    now = "2026-12-01 10:00:00"
    try:
        with engine.begin() as conn:
            for claim_id, merged_into in (("clm_live", None), ("clm_gone", "clm_live")):
                conn.execute(sa.text(
                    "INSERT INTO claim (id, text, language, places, fingerprint, version, "
                    "status, duplicate_of, created_by, created_at, updated_at) VALUES (:id, "
                    "'t', 'en', '[]', :id, 1, 'unverified', :dup, 'test', :now, :now)"),
                    {"id": claim_id, "dup": merged_into, "now": now})
                conn.execute(sa.text("INSERT INTO claim_band (band, claim_id) VALUES "
                                     "(1, :id), (2, :id)"), {"id": claim_id})
        migrate.upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT claim_id, band FROM claim_band ORDER BY claim_id, band")).all()
        assert [tuple(r) for r in rows] == [("clm_live", 1), ("clm_live", 2)]
    finally:
        engine.dispose()
