"""bench P4's floor copies every row the service wrote, so the ratio it prints is the best a
service storing these rows through one writer could reach (bench/ingest_rows.py)."""

import sqlalchemy as sa

from app import migrate
from bench import corpus
from bench.ingest_rows import floor_pg, floor_sqlite
from tests.factories import ingest

# What the floor may leave out: the service's bookkeeping, and FTS5's shadow tables (filled
# by inserting into claim_search itself).
NOT_LEDGER = {"alembic_version", "api_key", "origin_owner", "idempotency_record", "instance",
              "rate_limit_window", *(f"claim_search_{part}" for part in (
                  "config", "content", "data", "docsize", "idx"))}


def _ledger(url: str) -> dict[str, list[str]]:
    """Every row of every ledger table (the FTS5 table's with its rowid), as text, sorted."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for table in set(sa.inspect(conn).get_table_names()) - NOT_LEDGER:
                columns = "rowid, *" if table == "claim_search" and conn.dialect.name == \
                    "sqlite" else "*"
                out[table] = sorted(repr(tuple(row)) for row in conn.exec_driver_sql(
                    f"SELECT {columns} FROM {table}"))
            return out
    finally:
        engine.dispose()


def _found(url: str, word: str) -> list[str]:
    """The claim ids the search documents match for `word`."""
    engine = sa.create_engine(url)
    sql = ("SELECT d.claim_id FROM claim_search s JOIN claim_search_doc d ON d.rowid = s.rowid "
           "WHERE claim_search MATCH :w ORDER BY 1" if engine.dialect.name == "sqlite" else
           "SELECT claim_id FROM claim_search WHERE document @@ plainto_tsquery('english', :w) "
           "ORDER BY 1")
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), {"w": word}).scalars())
    finally:
        engine.dispose()


def test_floor_writes_every_row_the_api_wrote(client, auth, settings, databases):
    items = corpus.Corpus(seed=4).items(120)
    items[5]["text"] = items[3]["text"]  # an exact duplicate: folded, an event of its own
    summary = ingest(client, auth(), items)["summary"]
    assert summary["duplicate"] >= 1 and summary["error"] == 0
    target = databases.empty_url()
    migrate.upgrade(target)
    floor = floor_sqlite if databases.kind == "sqlite" else floor_pg

    took, written = floor(settings.database_url, target)

    stored = _ledger(settings.database_url)
    assert took > 0
    assert {"claim", "attribution", "claim_topic", "claim_band", "event", "source",
            "claim_search"} <= set(written)
    assert len(stored["claim"]) == summary["created"]
    assert len(stored["claim_band"]) > len(stored["claim"])
    assert {t: n for t, (n, _) in written.items()} == {t: len(r) for t, r in stored.items() if r}
    assert _ledger(target) == stored  # every column of every row of every table
    word = items[0]["text"].split()[-1].strip(".,")
    assert _found(target, word) == _found(settings.database_url, word) != []
