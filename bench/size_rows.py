"""P11: the bytes a claim costs on disk, by table with its indexes, on a ledger written
through the real write path (issue 26, item 4).

`--claims N` generated claims (bench/corpus.py: 1-2 sources named each, 1-2 topics, ~3%
exact duplicates folded into the claim they repeat) go through `app.domain.ingest.ingest`,
what `POST /v1/ingest` runs, in batches of 1,000 on one session, into a fresh migrated
database: claims, topics, attributions, sources, band keys, events with their snapshots and
search documents, all of it. Then each table's bytes (its indexes, and on SQLite the
FTS5 index's shadow tables, counted with it) over the claims stored: SQLite's `dbstat`
after a checkpoint; PostgreSQL's `pg_total_relation_size` (heap, TOAST and indexes) after
a VACUUM, so dead rows of the few updated ones do not count.
"""

import sqlite3
import time
from collections import defaultdict
from contextlib import closing

from bench import corpus
from bench.harness import Options, Result, driver_url, migrate, pg_database, say, sqlite_database

TARGET_KB = 1.5
BATCH = 1000


def write_ledger(url: str, claims: int, *, seed: int = 11) -> int:
    """Ingest `claims` generated items into the migrated database at `url`; returns the
    claims stored (fewer: exact duplicates fold)."""
    from app.config import Settings
    from app.db import Database
    from app.domain.ingest import ingest

    db = Database(Settings(database_url=url))
    gen = corpus.Corpus(seed=seed)
    began = time.perf_counter()
    try:
        for start in range(0, claims, BATCH):
            items = gen.items(min(BATCH, claims - start), origin="bench-size")
            for n, item in enumerate(items):
                item["external_id"] = f"item-{start + n}"
            with db.write_session() as session:
                ingest(session, items=items, actor="bench", threshold=0.5)
                session.commit()
            if (start // BATCH) % 100 == 99:
                say(f"      {start + BATCH:,} items in {time.perf_counter() - began:.0f} s")
        with db.session() as session:
            from sqlalchemy import text
            return session.execute(text("SELECT count(*) FROM claim")).scalar_one()
    finally:
        db.engine.dispose()


def sizes_sqlite(url: str) -> tuple[dict[str, int], int]:
    """{table: bytes of its b-tree and its indexes'} (FTS5's shadow tables under their
    virtual table), and the file's bytes."""
    with closing(sqlite3.connect(driver_url(url))) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master "
                                  "WHERE type IN ('table', 'index')").fetchall())
        virtual = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%'")]
        out: dict[str, int] = defaultdict(int)
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            table = next((v for v in virtual if table.startswith(f"{v}_")), table)
            out[table] += size
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    return dict(out), pages * page


def sizes_pg(url: str) -> tuple[dict[str, int], int]:
    """{table: pg_total_relation_size}, and the database's bytes."""
    import psycopg

    with psycopg.connect(driver_url(url), autocommit=True) as conn:
        conn.execute("VACUUM")
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall()
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return dict(rows), total


def _report(name: str, stored: int, sizes: dict[str, int], total: int) -> list[str]:
    lines = [f"{name}: {stored:,} claims, {total / 1e6:,.1f} MB in all, "
             f"{total / stored / 1000:.2f} KB a claim; by table (with its indexes):"]
    for table, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        if size * 1000 >= total:  # 0.1% and over
            lines.append(f"  {table:<28} {size / stored:8.0f} B a claim  "
                         f"{100 * size / total:5.1f}%")
    return lines


def _one(name: str, database, sizes, opts: Options) -> Result:
    title = f"bytes a claim written through ingest, {name}"
    target = f"≤ {TARGET_KB} KB a claim" if name == "SQLite" else "printed"
    with database("size") as url:
        migrate(url)
        began = time.perf_counter()
        stored = write_ledger(url, opts.claims)
        took = time.perf_counter() - began
        by_table, total = sizes(url)
    kb = total / stored / 1000
    notes = _report(name, stored, by_table, total)
    notes.append(f"written in {took:.0f} s ({opts.claims / took:,.0f} items/s)")
    measured = (f"{kb:.2f} KB a claim at {stored:,} claims "
                f"({total / 1e6:,.0f} MB; events {by_table.get('event', 0) / stored:.0f} B, "
                f"band keys {by_table.get('claim_band', 0) / stored:.0f} B a claim)")
    passed = kb <= TARGET_KB if name == "SQLite" else True
    return Result(f"P11-{name}", title, measured, target, passed, notes)


def p11(opts: Options) -> list[Result]:
    return [_one("SQLite", sqlite_database, sizes_sqlite, opts),
            _one("PostgreSQL", pg_database, sizes_pg, opts)]
