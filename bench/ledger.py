"""A large ledger for the scale rows (P5, P6, P8), bulk-inserted into the migrated schema.

Going through the API would take hours at 1,000,000 claims, so the rows are written
directly: sources (+ their `source_name` lookup keys), claims, one attribution and one
topic per claim, and the search index exactly as app/domain/search.py writes it — on SQLite a
`claim_search_doc` row (claim id ↔ rowid) plus the FTS5 `claim_search` row holding
`text + "\\n" + quote + "\\n" + source name`; on PostgreSQL `claim_search` with
`to_tsvector('english', …)` of the same document.

For the write path (P13) the ledger also holds what a new claim's rows are inserted
among: each claim's near-duplicate band keys, computed by the app's own
`similarity.band_rows` (so a new band scheme rebuilds the ledger with it: BUILD_VERSION
hashes similarity.py), and one `claim.created` event per claim with the change the app
records. The event's snapshot is left out: a new event is appended at the end of its
table whatever older rows hold, and what a write pays for the older events is their two
indexes (`at`, `claim_id`), which these rows fill; without snapshots the ledger is a
fraction of the size to copy. (So `as_of` finds none of the bench's claims.)

The SQLite ledger is cached under bench/out/ (keyed by size, build version and the
migration head, so a schema change rebuilds it); the PostgreSQL one is copied from it
into a fresh database each time, and dropped afterwards.
"""

import contextlib
import hashlib
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import corpus
from bench.harness import (
    BIN,
    OUT,
    claimledger_env,
    driver_url,
    pg_database,
    remove_sqlite,
    run,
    say,
)


def _build_version() -> str:
    """A change to the generated texts or to the band rows the app makes of a text rebuilds
    the cached copies (the latter found by making them for some texts: an edit to
    similarity.py that keeps them does not); so does bumping the number (do that when
    _fill_sqlite or datasette_db writes something different)."""
    from app.domain.similarity import band_rows

    digest = hashlib.sha256(Path(corpus.__file__).read_bytes())
    sample = corpus.Corpus(seed=1, names=100, villages=100).claims(200)
    for n, (text, *_) in enumerate(sample):
        digest.update(repr(band_rows(f"clm_{n}", text)).encode())
    return "5-" + digest.hexdigest()[:12]


BUILD_VERSION = _build_version()
CHUNK = 20_000
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite
KINDS = {"Institute for the Study of War": "think_tank", "United Nations": "intergovernmental",
         "OHCHR": "intergovernmental", "Red Cross": "ngo", "Amnesty International": "ngo",
         "Human Rights Watch": "ngo", "Rochan Consulting": "think_tank", "Pentagon": "military"}


def migration_head() -> str:
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    return ",".join(sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()))


def migrate(url: str) -> None:
    run([str(BIN / "claimledger"), "migrate"], env=claimledger_env(url))


def _insert(conn: sqlite3.Connection, table: str, columns: tuple[str, ...],
            rows: list[tuple]) -> None:
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                     f"({', '.join('?' * len(columns))})", rows)


CLAIM_COLUMNS = ("id", "text", "language", "places", "fingerprint", "version", "status",
                 "created_by", "created_at", "updated_at")
ATTRIBUTION_COLUMNS = ("id", "claim_id", "source_id", "stance", "created_by", "created_at")
SOURCE_COLUMNS = ("id", "name", "kind", "reliability", "aliases", "version", "created_at",
                  "updated_at")
EVENT_COLUMNS = ("id", "at", "actor", "action", "entity_type", "entity_id", "claim_id",
                 "changes")


def sqlite_ledger(claims: int) -> tuple[Path, dict]:
    """The cached SQLite ledger of `claims` claims (built on first use) and its metadata."""
    OUT.mkdir(parents=True, exist_ok=True)
    path, meta_path = OUT / f"ledger-{claims}.db", OUT / f"ledger-{claims}.json"
    head = migration_head()
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == BUILD_VERSION and meta.get("head") == head:
            say(f"    using the cached {claims:,}-claim ledger {path.relative_to(OUT.parent)}")
            return path, meta
    say(f"    building a {claims:,}-claim SQLite ledger (cached for later runs)…")
    began = time.perf_counter()
    building = OUT / f"ledger-{claims}.building.db"
    remove_sqlite(building)
    migrate(f"sqlite:///{building}")
    meta = _fill_sqlite(building, claims)
    meta.update(version=BUILD_VERSION, head=head, claims=claims,
                seconds=round(time.perf_counter() - began, 1))
    remove_sqlite(path)
    building.rename(path)
    meta_path.write_text(json.dumps(meta, indent=1))
    say(f"    built in {meta['seconds']:.0f} s ({path.stat().st_size / 1e6:,.0f} MB)")
    return path, meta


def _insert_bands(conn: sqlite3.Connection, rows: list[dict[str, object]]) -> None:
    """similarity.band_rows' rows, under the column names it gives."""
    if rows:
        columns = tuple(rows[0])
        _insert(conn, "claim_band", columns, [tuple(r[c] for c in columns) for r in rows])


def _fill_sqlite(path: Path, claims: int) -> dict:
    from app.domain.similarity import band_rows
    from app.domain.text import fingerprint, name_key
    from app.models.events import pack_json

    gen = corpus.Corpus(seed=20221207)
    rng = random.Random(1)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000",
                   "temp_store=MEMORY", "foreign_keys=OFF"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("BEGIN")
    start = datetime(2022, 2, 24, tzinfo=UTC)
    stamp = start.strftime(STAMP)
    source_ids = {}
    for name in gen.sources:
        source_ids[name] = f"src_{rng.getrandbits(80):020x}"
    _insert(conn, "source", SOURCE_COLUMNS, [
        (sid, name, KINDS.get(name, "other"), "F", "[]", 1, stamp, stamp)
        for name, sid in source_ids.items()])
    _insert(conn, "source_name", ("key", "source_id", "label", "is_name"),
            [(name_key(name), sid, name, 1) for name, sid in source_ids.items()])
    step = timedelta(days=1000) / claims
    df: dict[str, int] = {}
    rowid = 0
    texts = gen.claims(claims)
    for chunk_start in range(0, claims, CHUNK):
        claim_rows, attributions, topics, docs, fts, events = [], [], [], [], [], []
        bands: list[dict[str, object]] = []
        for n in range(chunk_start, min(claims, chunk_start + CHUNK)):
            text, topic, source, stance = next(texts)
            rowid += 1
            claim_id = f"clm_{rng.getrandbits(80):020x}"
            at = (start + step * n).strftime(STAMP)
            claim_rows.append((claim_id, text, "en", "[]", fingerprint(text), 1, "unverified",
                               "bench", at, at))
            attributions.append((f"att_{rng.getrandbits(80):020x}", claim_id,
                                 source_ids[source], stance, "bench", at))
            topics.append((claim_id, topic))
            docs.append((rowid, claim_id))
            fts.append((rowid, f"{text}\n\n{source}"))  # search.documents(): text, quote, name
            bands += band_rows(claim_id, text)
            events.append((rowid, at, "bench", "claim.created", "claim", claim_id, claim_id,
                           pack_json({"text": text})))  # as claims.insert_claims records it
            for word in set(corpus.WORD.findall(text.lower())):
                df[word] = df.get(word, 0) + 1
        _insert(conn, "claim", CLAIM_COLUMNS, claim_rows)
        _insert(conn, "attribution", ATTRIBUTION_COLUMNS, attributions)
        _insert(conn, "claim_topic", ("claim_id", "topic"), topics)
        _insert(conn, "claim_search_doc", ("rowid", "claim_id"), docs)
        _insert(conn, "claim_search", ("rowid", "body"), fts)
        _insert_bands(conn, bands)
        _insert(conn, "event", EVENT_COLUMNS, events)
        if (chunk_start // CHUNK) % 10 == 9:
            say(f"      {chunk_start + CHUNK:,} claims")
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    from collections import Counter

    return {"queries": corpus.pick_queries(Counter(df), claims),
            "sources": len(source_ids)}


def claim_ids(path: Path, count: int) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute(
            "SELECT id FROM claim ORDER BY random() LIMIT ?", (count,))]


def a_source_id(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT id FROM source ORDER BY name LIMIT 1").fetchone()[0]


# --- PostgreSQL ---------------------------------------------------------------

_TABLES = {  # copied from the SQLite ledger, parents first
    "source": SOURCE_COLUMNS,
    "source_name": ("key", "source_id", "label", "is_name"),
    "claim": CLAIM_COLUMNS,
    "attribution": ATTRIBUTION_COLUMNS,
    "claim_topic": ("claim_id", "topic"),
    "claim_band": ("band", "claim_id"),  # read in key order: the primary key fills in order
    "event": EVENT_COLUMNS,
}


def _secondary_indexes(conn, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes that back no constraint."""
    return conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "WHERE t.relname = %s AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)", (table,)).fetchall()


def _pg_session(url: str):
    import psycopg

    conn = psycopg.connect(driver_url(url))
    conn.execute("SET session_replication_role = replica")  # the rows are consistent
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


def _copy_table(url: str, sqlite_path: Path, table: str, columns: tuple[str, ...]) -> str:
    """COPY one table from the SQLite ledger, its secondary indexes rebuilt afterwards."""
    began = time.perf_counter()
    source = sqlite3.connect(sqlite_path)
    with _pg_session(url) as conn:
        indexes = _secondary_indexes(conn, table)
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        cols = ", ".join(columns)
        with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in source.execute(f"SELECT {cols} FROM {table}"):
                copy.write_row(row)
        for _, create in indexes:
            conn.execute(create)
        conn.commit()
    source.close()
    return f"{table} {time.perf_counter() - began:.0f} s"


def _index_half(url: str, where: str) -> None:
    """claim_search rows for some claims: the document search.documents() builds."""
    with _pg_session(url) as conn:
        conn.execute(
            "INSERT INTO claim_search (claim_id, document) "
            "SELECT c.id, to_tsvector('english', c.text || E'\\n' || "
            "coalesce(a.quote, '') || E'\\n' || s.name) FROM claim c "
            "JOIN attribution a ON a.claim_id = c.id "
            f"JOIN source s ON s.id = a.source_id WHERE {where}")
        conn.commit()


@contextlib.contextmanager
def pg_ledger(sqlite_path: Path, tag: str) -> Iterator[str]:
    """A fresh PostgreSQL database holding the same ledger; dropped afterwards.

    Tables are copied in parallel (one connection each), and the search index is built
    in two halves, then its GIN index at the end.
    """
    import psycopg

    with pg_database(tag) as url:
        began = time.perf_counter()
        say("    copying the ledger into a fresh PostgreSQL database…")
        migrate(url)
        with ThreadPoolExecutor(max_workers=len(_TABLES)) as pool:
            done = [f.result() for f in [pool.submit(_copy_table, url, sqlite_path, t, c)
                                         for t, c in _TABLES.items()]]
        step = time.perf_counter()
        with _pg_session(url) as conn:
            # The copied events kept their ids: the app's next one follows them.
            conn.execute("SELECT setval(pg_get_serial_sequence('event', 'id'), "
                         "(SELECT coalesce(max(id), 0) + 1 FROM event), false)")
            gin = _secondary_indexes(conn, "claim_search")
            for name, _ in gin:
                conn.execute(f'DROP INDEX "{name}"')
            conn.commit()
            with ThreadPoolExecutor(max_workers=2) as pool:
                for f in [pool.submit(_index_half, url, "c.id < 'clm_8'"),
                          pool.submit(_index_half, url, "c.id >= 'clm_8'")]:
                    f.result()
            for _, create in gin:
                conn.execute(create)
            conn.commit()
        done.append(f"claim_search {time.perf_counter() - step:.0f} s")
        with psycopg.connect(driver_url(url), autocommit=True) as conn:
            conn.execute("ANALYZE")  # what autovacuum would soon do after such a load
        say(f"    copied in {time.perf_counter() - began:.0f} s ({', '.join(done)})")
        yield url


# --- Datasette ----------------------------------------------------------------


def datasette_db(ledger: Path, meta: dict) -> Path:
    """The same claim texts as a table with FTS5 configured the way Datasette detects it
    (external content, same tokenizer as the app), cached beside the ledger."""
    path = OUT / f"datasette-{meta['claims']}.db"
    stamp = OUT / f"datasette-{meta['claims']}.json"
    key = {"ledger": ledger.stat().st_mtime_ns, "version": BUILD_VERSION}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == key:
        return path
    say("    building the Datasette copy (cached for later runs)…")
    building = OUT / "datasette.building.db"
    remove_sqlite(building)
    conn = sqlite3.connect(building, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("ATTACH DATABASE ? AS src", (str(ledger),))
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE claims (id TEXT NOT NULL, text TEXT NOT NULL, "
                 "created_at TEXT NOT NULL)")
    conn.execute("INSERT INTO claims (rowid, id, text, created_at) "
                 "SELECT d.rowid, c.id, c.text, c.created_at FROM src.claim_search_doc d "
                 "JOIN src.claim c ON c.id = d.claim_id ORDER BY d.rowid")
    conn.execute("CREATE VIRTUAL TABLE claims_fts USING fts5(text, content=\"claims\", "
                 "tokenize='porter unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO claims_fts (rowid, text) SELECT rowid, text FROM claims")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE src")
    conn.close()
    remove_sqlite(path)
    building.rename(path)
    stamp.write_text(json.dumps(key))
    return path
