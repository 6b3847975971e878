"""P9: batches naming many new sources through POST /v1/ingest, against the raw driver.

The API side: batches of 1,000 items, each item naming 100 sources nobody has named
before (100,000 new sources a batch, ~5.7 MB of JSON), sent one after another by one
client into a fresh database; a `POST /v1/claims` is sent while each batch is being
written, and how long it waits is printed (a writer queued behind a batch waits for it).
The service's request deadline is raised for this row so that a slow batch is timed
instead of cut at 60 s. The ceiling: the same sources' rows (`source` and `source_name`)
written by the bare driver into another fresh migrated database in one transaction:
sqlite3 `executemany` on SQLite, psycopg `COPY` on PostgreSQL. Commit included on both.
"""

import json
import sqlite3
import statistics
import threading
import time
from datetime import UTC, datetime

import psycopg

from bench import corpus
from bench.harness import (
    Options,
    Result,
    Service,
    admin_key,
    driver_url,
    pg_database,
    say,
    sqlite_database,
)

ITEMS, SOURCES_PER_ITEM = 1000, 100
BATCH_SECONDS = 10.0  # the target: a batch this size stored well inside the request deadline


def source_name(batch: int, item: int, k: int) -> str:
    return f"Bench source {batch:02d}-{item:04d}-{k:03d}"


def batches(count: int) -> list[bytes]:
    texts = corpus.Corpus(seed=9)
    out = []
    for b in range(count):
        items = [{"text": f"Batch {b} item {i}: {texts.text()}", "attributions": [
            {"source": source_name(b, i, k), "stance": "asserts"} for k in range(SOURCES_PER_ITEM)
        ]} for i in range(ITEMS)]
        out.append(json.dumps(items).encode())
    return out


def source_rows(count: int) -> tuple[list[tuple], list[tuple]]:
    """The `source` and `source_name` rows of every source the batches name."""
    from app.domain.text import name_key  # the service's own key, so the rows are the same

    now = datetime.now(UTC)
    sources, names = [], []
    for b in range(count):
        for i in range(ITEMS):
            for k in range(SOURCES_PER_ITEM):
                name, source_id = source_name(b, i, k), f"src_{b:02d}{i:04d}{k:03d}"
                sources.append((source_id, name, "other", "F", "[]", 1, now, now))
                names.append((name_key(name), source_id, name, True))
    return sources, names


SOURCE_COLUMNS = "id, name, kind, reliability, aliases, version, created_at, updated_at"
NAME_COLUMNS = "key, source_id, label, is_name"


def raw_sqlite(url: str, sources: list[tuple], names: list[tuple]) -> float:
    conn = sqlite3.connect(driver_url(url), isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    stamp = sources[0][-1].strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = [(*r[:-2], stamp, stamp) for r in sources]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO source ({SOURCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     rows)
    conn.executemany(f"INSERT INTO source_name ({NAME_COLUMNS}) VALUES (?, ?, ?, ?)", names)
    conn.execute("COMMIT")
    took = time.perf_counter() - start
    conn.close()
    return took


def raw_pg(url: str, sources: list[tuple], names: list[tuple]) -> float:
    with psycopg.connect(driver_url(url)) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur:
            for table, columns, rows in (("source", SOURCE_COLUMNS, sources),
                                         ("source_name", NAME_COLUMNS, names)):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        conn.commit()
        return time.perf_counter() - start


def _one_database(database: str, fresh, raw, bodies: list[bytes], opts: Options) -> Result:
    sources, names = source_rows(len(bodies))
    took: list[float] = []
    waits: list[float] = []
    notes: list[str] = []
    failed: list[str] = []
    with fresh("p9api") as url, Service(url, name=f"p9-{database.lower()}", env={
            "CLAIMLEDGER_REQUEST_TIMEOUT_SECONDS": "900",
            "CLAIMLEDGER_STATEMENT_TIMEOUT_MS": "900000"}) as svc, \
            svc.client(timeout=900) as client:
        for n, body in enumerate(bodies):
            done = threading.Event()
            waited: list[float] = []

            def meanwhile(n: int = n, done: threading.Event = done,
                          waited: list[float] = waited) -> None:
                """POST /v1/claims one after another while the batch runs."""
                sent = 0
                while not done.wait(0.25):
                    began = time.perf_counter()
                    response = client.post("/v1/claims", json={
                        "text": f"Claim {sent} sent while batch {n} is written."})
                    waited.append(time.perf_counter() - began)
                    sent += 1
                    if response.status_code != 201:
                        notes.append(f"batch {n}: a POST /v1/claims sent meanwhile got "
                                     f"{response.status_code}")

            other = threading.Thread(target=meanwhile)
            other.start()
            began = time.perf_counter()
            response = client.post("/v1/ingest", content=body, headers={
                "Content-Type": "application/json", "Idempotency-Key": f"p9-{n}"})
            took.append(time.perf_counter() - began)
            done.set()
            other.join()
            waits += waited
            summary = response.json().get("summary") if response.status_code == 200 else None
            if summary is None or summary["created"] != ITEMS:
                failed.append(f"batch {n}: {response.status_code} after {took[-1]:.1f} s: "
                              f"{response.text[:200]}")
            say(f"    batch {n + 1}: {ITEMS:,} items naming {ITEMS * SOURCES_PER_ITEM:,} new "
                f"sources ({len(body) / 1e6:.1f} MB): {response.status_code} in "
                f"{took[-1]:.1f} s; {len(waited)} POST /v1/claims sent meanwhile, the slowest "
                f"{max(waited, default=0):.1f} s")
    with fresh("p9raw") as url:
        admin_key(url)  # migrates the fresh database
        raw_took = raw(url, sources, names)
    say(f"           raw {len(sources):,} sources ({len(sources) + len(names):,} rows) in "
        f"{raw_took:.2f} s = {len(sources) / raw_took:,.0f} sources/s")
    batch = statistics.median(took)
    ceiling = len(sources) / raw_took
    method = "sqlite3 executemany" if database == "SQLite" else "psycopg COPY"
    row = f"P9-{'sqlite' if database == 'SQLite' else 'pg'}"
    title = (f"POST /v1/ingest, batches naming {ITEMS * SOURCES_PER_ITEM:,} new sources, "
             f"{database}")
    target = f"batch ≤ {BATCH_SECONDS:.0f} s; ratio printed"
    notes.insert(0, f"{len(bodies)} batch(es) of {ITEMS:,} items x {SOURCES_PER_ITEM} new "
                    f"sources, one client, sequential; POST /v1/claims sent one after another "
                    f"during each batch waited {max(waits, default=0):.1f} s at most")
    if failed:
        return Result(row, title, f"not stored: {failed[0]}", target, False, notes + failed)
    api = ITEMS * SOURCES_PER_ITEM / batch
    return Result(row, title, f"{api / ceiling:.3f}x ({api:,.0f} sources/s via API / "
                  f"{ceiling:,.0f} sources/s {method}); median batch {batch:.1f} s", target,
                  batch <= BATCH_SECONDS and not notes[1:], notes)


def p9(opts: Options) -> list[Result]:
    bodies = batches(3 if opts.full else 1)
    return [_one_database("SQLite", sqlite_database, raw_sqlite, bodies, opts),
            _one_database("PostgreSQL", pg_database, raw_pg, bodies, opts)]
