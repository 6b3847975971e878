"""P4: batch ingestion through POST /v1/ingest against the raw driver writing the same rows.

The API side: 100,000 generated claims (sources named, ~3% exact duplicates, near
duplicates as they come), in batches of 1,000 with an Idempotency-Key each, sent one
after another by one client — the way `claimledger import --url` sends them — into a
fresh database. The ceiling: the claim rows the API created (one per distinct claim),
written by the bare driver into the same migrated `claim` table of another fresh
database, in one transaction: sqlite3 `executemany` on SQLite, psycopg `COPY` on
PostgreSQL. Commit included on both sides.
"""

import json
import sqlite3
import statistics
import time
from contextlib import closing
from datetime import UTC, datetime

import psycopg

from bench import corpus
from bench.harness import (
    Options,
    Profile,
    Result,
    Service,
    admin_key,
    driver_url,
    migrate,
    pg_database,
    say,
    sqlite_database,
)

BATCH = 1000
COLUMNS = ("id", "text", "language", "places", "origin", "external_id", "fingerprint",
           "version", "status", "created_by", "created_at", "updated_at")


def claim_rows(items: list[dict]) -> list[tuple]:
    """The claim rows ingesting `items` creates: one per distinct normalized text."""
    from app.domain.text import fingerprint  # the service's own fingerprint, so duplicates agree

    seen: set[str] = set()
    rows = []
    now = datetime.now(UTC)
    for n, item in enumerate(items):
        fp = fingerprint(item["text"])
        if fp in seen:
            continue
        seen.add(fp)
        rows.append((f"clm_{n:020x}", item["text"], "en", "[]", item["origin"],
                     item["external_id"], fp, 1, "unverified", "bench", now, now))
    return rows


def raw_sqlite(url: str, rows: list[tuple]) -> float:
    """Seconds for sqlite3 executemany of the rows (the app's pragmas), commit included."""
    conn = sqlite3.connect(driver_url(url), isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    stamp = rows[0][-1].strftime("%Y-%m-%d %H:%M:%S.%f")
    data = [(*r[:-2], stamp, stamp) for r in rows]
    sql = f"INSERT INTO claim ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(sql, data)
    conn.execute("COMMIT")
    took = time.perf_counter() - start
    conn.close()
    return took


def raw_pg(url: str, rows: list[tuple]) -> float:
    """Seconds for psycopg COPY of the rows, commit included."""
    with psycopg.connect(driver_url(url)) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                f"COPY claim ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - start


# The floor: every row the API wrote (claims, attributions, topics, sources, band keys,
# events, search documents), read back from its database and written by the bare driver
# into a fresh migrated one, the same way as the ceiling. Its rate over the ceiling's is
# the best ratio a service writing these rows through one writer could reach, before any
# Python runs; P4's batches come one after another and are a transaction each.
# Bookkeeping tables (keys and the origins they own, idempotency records, heartbeats, rate
# windows) are left out.
_BOOKKEEPING = {"alembic_version", "api_key", "origin_owner", "idempotency_record",
                "instance", "rate_limit_window"}
_FIRST = ("source", "source_name", "claim")  # referenced by the others' foreign keys
_FTS5_SHADOWS = ("config", "content", "data", "docsize", "idx")


def _ordered(tables: list[str]) -> list[str]:
    rest = sorted(t for t in tables if t not in _FIRST and t not in _BOOKKEEPING)
    return [t for t in _FIRST if t in tables] + rest


def floor_sqlite(api_url: str, url: str) -> tuple[float, dict[str, tuple[int, float]]]:
    """Seconds for sqlite3 executemany of every row the API wrote, commit included, and
    each table's rows and seconds. FTS5's shadow tables are filled by its own inserts.

    Rows go in the order the API wrote them: by rowid, and a WITHOUT ROWID table's (the
    band keys) by their claim's. Read in key order, the band keys were only appended:
    0.43 s against 1.39 s in the API's order, for a 12,000-claim ledger."""
    with closing(sqlite3.connect(driver_url(api_url))) as source:
        schema = dict(source.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                     "AND name NOT LIKE 'sqlite_%'").fetchall())
        virtual = {name for name, sql in schema.items() if "VIRTUAL" in sql}
        shadows = {f"{v}_{part}" for v in virtual for part in _FTS5_SHADOWS}
        data = {}
        for table in _ordered([name for name in schema if name not in shadows]):
            columns = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
            if table in virtual:
                columns = ["rowid", *columns]
            listed = ", ".join(f"t.{c}" for c in columns)
            if "WITHOUT ROWID" not in schema[table].upper():
                sql = f"SELECT {listed} FROM {table} AS t ORDER BY t.rowid"
            elif "claim_id" in columns:
                sql = (f"SELECT {listed} FROM {table} AS t JOIN claim AS c ON c.id = t.claim_id "
                       f"ORDER BY c.rowid")
            else:
                raise RuntimeError(f"{table}: no order to write its rows in as the API did")
            rows = source.execute(sql).fetchall()
            if rows:
                data[table] = (columns, rows)
    conn = sqlite3.connect(driver_url(url), isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    tables_took = {}
    start = time.perf_counter()
    conn.execute("BEGIN")
    for table, (columns, rows) in data.items():
        began = time.perf_counter()
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                         f"VALUES ({', '.join('?' * len(columns))})", rows)
        tables_took[table] = (len(rows), time.perf_counter() - began)
    conn.execute("COMMIT")
    took = time.perf_counter() - start
    conn.close()
    return took, tables_took


def floor_pg(api_url: str, url: str) -> tuple[float, dict[str, tuple[int, float]]]:
    """Seconds for psycopg COPY of every row the API wrote, commit included, and each
    table's rows and seconds, in the order read back (a table's heap order: the order the
    API inserted them). Search documents go in as the tsvectors stored, so the floor
    leaves out the to_tsvector() the service has PostgreSQL run."""
    data: dict[str, tuple[list[str], list[bytes], int]] = {}
    with psycopg.connect(driver_url(api_url)) as source:
        tables = _ordered([r[0] for r in source.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")])
        for table in tables:
            columns = [r[0] for r in source.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND table_schema = 'public' AND is_generated = 'NEVER' "
                "ORDER BY ordinal_position", (table,))]
            count = source.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if not count:
                continue
            with source.cursor() as cur, cur.copy(
                    f"COPY (SELECT {', '.join(columns)} FROM {table}) TO STDOUT") as copy:
                data[table] = (columns, [bytes(block) for block in copy], count)
    tables_took = {}
    with psycopg.connect(driver_url(url)) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur:
            for table, (columns, blocks, count) in data.items():
                began = time.perf_counter()
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for block in blocks:
                        copy.write(block)
                tables_took[table] = (count, time.perf_counter() - began)
        conn.commit()
        took = time.perf_counter() - start
    return took, tables_took


def ingest(service: Service, bodies: list[bytes], tag: str,
           budget: float | None = None) -> dict[str, int]:
    """Send the batches in order (until `budget` seconds have passed); summed results."""
    totals = {"received": 0, "created": 0, "duplicate": 0, "updated": 0, "error": 0}
    deadline = time.monotonic() + budget if budget else None
    with service.client(timeout=900) as client:
        for n, body in enumerate(bodies):
            if deadline is not None and time.monotonic() > deadline:
                break
            response = client.post("/v1/ingest", content=body, headers={
                "Content-Type": "application/json", "Idempotency-Key": f"{tag}-{n}"})
            if response.status_code != 200:
                raise RuntimeError(f"batch {n}: {response.status_code} {response.text[:300]}")
            for name, value in response.json()["summary"].items():
                totals[name] = totals.get(name, 0) + value  # counts added since are summed too
    return totals


def count_claims(url: str) -> int:
    if url.startswith("sqlite"):
        with sqlite3.connect(driver_url(url)) as conn:
            return conn.execute("SELECT count(*) FROM claim").fetchone()[0]
    with psycopg.connect(driver_url(url)) as conn:
        return conn.execute("SELECT count(*) FROM claim").fetchone()[0]


def _one_database(database: str, fresh, raw, floor, items: list[dict], bodies: list[bytes],
                  rows: list[tuple], opts: Options) -> Result:
    runs = 3 if opts.full else 1
    budget = None if opts.full else opts.ingest_budget
    api_rates, api_claim_rates, raw_rates, floor_rates, notes, profiles = [], [], [], [], [], []
    written: dict[str, tuple[int, float]] = {}
    totals: dict[str, int] = {}
    for run in range(runs):
        with fresh(f"p4api{run}") as url:
            with Service(url, name=f"p4-{database.lower()}") as svc:
                # Sample the second half of the first run (the ledger has grown by then),
                # to show where the time goes if the row fails.
                window = (budget or 120) / 2
                profile = Profile(svc.pid, window, f"p4-{database.lower()}", delay=window) \
                    if opts.profile and run == 0 else None
                if profile:
                    profile.start()
                start = time.perf_counter()
                totals = ingest(svc, bodies, f"run{run}", budget)
                took = time.perf_counter() - start
                stored = count_claims(url)
                if profile:
                    profiles = profile.finish()
            with fresh(f"p4floor{run}") as floor_url:  # with the service stopped, as raw
                migrate(floor_url)  # no key: minting one writes an event
                floor_took, written = floor(url, floor_url)
        floor_rates.append(stored / floor_took)
        api_claim_rates.append(stored / took)
        api_rates.append(totals["received"] / took)
        say(f"    run {run + 1}: API {totals['received']:,} items in {took:.1f} s = "
            f"{api_rates[-1]:,.0f} items/s ({totals['created']:,} created, "
            f"{totals['duplicate']:,} duplicates, {totals['error']} errors; "
            f"{stored:,} claims stored)")
        if totals["received"] < len(items):
            notes.append(
                f"run {run + 1} stopped at the {budget:.0f} s budget after "
                f"{totals['received']:,} of {len(items):,} items (--full sends them all); "
                f"the rate is of that first part, on the smaller ledger, so the whole run "
                f"would be no faster")
        with fresh(f"p4raw{run}") as url:
            admin_key(url)  # migrates the fresh database
            took = raw(url, rows)
        raw_rates.append(len(rows) / took)
        say(f"           raw {len(rows):,} claim rows in {took:.2f} s = "
            f"{raw_rates[-1]:,.0f} rows/s")
        floor_rows = sum(n for n, _ in written.values())
        say(f"           floor: every row the API wrote, {floor_rows:,} in {floor_took:.2f} s "
            f"= {floor_rates[-1]:,.0f} claims/s")
        if stored != totals["created"]:  # nothing else writes claims here
            notes.append(f"run {run + 1}: {totals['created']:,} reported created but "
                         f"{stored:,} claims stored")
    api, ceiling = statistics.median(api_rates), statistics.median(raw_rates)
    ratio = api / ceiling
    method = "sqlite3 executemany" if database == "SQLite" else "psycopg COPY"
    passed = ratio >= 0.10 and not notes and totals.get("error", 1) == 0
    measured = f"{ratio:.3f}x ({api:,.0f} items/s via API / {ceiling:,.0f} rows/s {method})"
    notes.insert(0, f"{len(items):,} items in batches of {BATCH} (Idempotency-Key each), one "
                    f"client, sequential; {len(rows):,} distinct claims; raw: all "
                    f"{len(rows):,} rows")
    floor_rate = statistics.median(floor_rates)
    api_claims = statistics.median(api_claim_rates)
    last = "the last run's" if runs > 1 else "its"
    notes.insert(1, f"floor: the bare driver writing every row the API wrote, in the order the "
                    f"API wrote them, on one connection in one transaction, reaches "
                    f"{floor_rate:,.0f} claims/s = {floor_rate / ceiling:.3f}x of the ceiling: "
                    f"what a service storing these rows through one writer could print at "
                    f"best; the API's {api_claims:,.0f} claims/s are "
                    f"{api_claims / floor_rate:.2f}x of it ({last} tables: "
                    f"{'; '.join(f'{t} {n:,} in {s:.2f} s' for t, (n, s) in written.items())}"
                    f"; the commit the rest)")
    if not passed and opts.profile:
        notes.append("py-spy attached for the second half of run 1:")
        notes += profiles
    return Result(f"P4-{'sqlite' if database == 'SQLite' else 'pg'}",
                  f"POST /v1/ingest, {len(items):,} claims with sources, dedup on, "
                  f"{database}", measured, f"≥ 0.10x of {method}", passed, notes)


def p4(opts: Options) -> list[Result]:
    began = time.perf_counter()
    items = corpus.Corpus(seed=4).items(opts.ingest_claims)
    bodies = [json.dumps(items[i:i + BATCH]).encode() for i in range(0, len(items), BATCH)]
    rows = claim_rows(items)
    say(f"    generated {len(items):,} items ({len(rows):,} distinct) in "
        f"{time.perf_counter() - began:.0f} s")
    return [
        _one_database("SQLite", sqlite_database, raw_sqlite, floor_sqlite, items, bodies, rows,
                      opts),
        _one_database("PostgreSQL", pg_database, raw_pg, floor_pg, items, bodies, rows, opts),
    ]
