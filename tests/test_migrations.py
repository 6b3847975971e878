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
        migrate.upgrade(url, "0011")  # later, 0016b computes every row again from the text
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT claim_id, band FROM claim_band ORDER BY claim_id, band")).all()
        assert [tuple(r) for r in rows] == [("clm_live", 1), ("clm_live", 2)]
    finally:
        engine.dispose()


def test_migration_0016_packs_event_json_and_its_downgrade_restores_it(databases):
    """Events written as JSON text before migration 0016 read back the same after it (packed)
    and after its downgrade (JSON text again), null snapshots staying SQL NULL."""
    import json

    from app.models.events import unpack_json

    url = databases.empty_url()
    migrate.upgrade(url, "0015")
    engine = sa.create_engine(url)
    snapshot = {"text": "Зеленський: «9 000»", "version": 1, "topics": ["belarus"],
                "attributions": [{"source": {"id": "src_1", "name": "ISW"}, "quote": None}],
                "current_review": None, "contested": False}
    events = [  # id -> (changes, snapshot)
        (1, {"text": snapshot["text"], "via": "ingest"}, snapshot),
        (2, {"name": "ISW", "aliases": []}, None),
        (3, {}, {**snapshot, "version": 2}),
    ]
    try:
        with engine.begin() as conn:
            for event_id, changes, snap in events:
                conn.execute(sa.text(
                    "INSERT INTO event (id, at, actor, action, entity_type, entity_id, "
                    "claim_id, changes, snapshot) VALUES (:id, '2026-12-01 10:00:00', 'test', "
                    "'claim.created', 'claim', 'clm_1', 'clm_1', :changes, :snapshot)"),
                    {"id": event_id, "changes": json.dumps(changes),
                     "snapshot": None if snap is None else json.dumps(snap)})

        def stored() -> list[tuple]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(
                    "SELECT id, changes, snapshot FROM event ORDER BY id")).all()]

        migrate.upgrade(url)
        rows = stored()
        assert all(bytes(r[1])[:1] == b"\x01" for r in rows)
        assert [(i, unpack_json(c), unpack_json(s)) for i, c, s in rows] == events
        assert rows[1][2] is None
        migrate.downgrade(url, "0015")
        def parsed(value):  # JSON text on SQLite; PostgreSQL's json type comes parsed
            return value if value is None or isinstance(value, dict) else json.loads(value)

        assert [(i, parsed(c), parsed(s)) for i, c, s in stored()] == events
        migrate.upgrade(url)
        assert [(i, unpack_json(c), unpack_json(s)) for i, c, s in stored()] == events
    finally:
        engine.dispose()


def test_migration_0016b_computes_every_band_row_again(databases):
    """Band rows of the 16-band, 63-bit scheme become the 10-band, 31-bit rows
    similarity.text_bands gives now (none for a merged claim), and back on downgrade."""
    from app.domain import similarity

    url = databases.empty_url()
    migrate.upgrade(url, "0016_compact_events")
    engine = sa.create_engine(url)
    texts = {"clm_a": "Thousands of Russian soldiers have been stationed in Belarus.",
             "clm_b": "Зеленський: війська РФ у Білорусі",  # noqa: RUF001
             "clm_c": "the of and",  # no comparable words: no bands
             "clm_merged": "Thousands of Russian soldiers are in Belarus."}

    def old(text: str) -> set[int]:
        return set(similarity.bands(similarity.words(text), count=16, mask=(1 << 63) - 1))

    def rows() -> dict[str, set[int]]:
        with engine.connect() as conn:
            found: dict[str, set[int]] = {}
            for band, claim_id in conn.execute(sa.text("SELECT band, claim_id FROM claim_band")):
                found.setdefault(claim_id, set()).add(band)
            return found

    try:
        with engine.begin() as conn:
            for claim_id, text in texts.items():
                conn.execute(sa.text(
                    "INSERT INTO claim (id, text, language, places, fingerprint, version, "
                    "status, duplicate_of, created_by, created_at, updated_at) VALUES (:id, "
                    ":text, 'en', '[]', :id, 1, 'unverified', :dup, 'test', "
                    "'2026-12-01 10:00:00', '2026-12-01 10:00:00')"),
                    {"id": claim_id, "text": text,
                     "dup": "clm_a" if claim_id == "clm_merged" else None})
                if claim_id != "clm_merged":
                    for band in old(text):
                        conn.execute(sa.text("INSERT INTO claim_band (band, claim_id) "
                                             "VALUES (:b, :c)"), {"b": band, "c": claim_id})
        before = rows()
        assert set(before) == {"clm_a", "clm_b"} and len(before["clm_a"]) == 16
        migrate.upgrade(url)
        assert rows() == {c: set(similarity.text_bands(texts[c])) for c in ("clm_a", "clm_b")}
        assert all(len(bands) == 10 for bands in rows().values())
        migrate.downgrade(url, "0016_compact_events")
        assert rows() == before
    finally:
        engine.dispose()
