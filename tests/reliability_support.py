"""Helpers for the reliability, state-machine and abuse tests.

- `FULL`: CLAIMLEDGER_RELIABILITY_FULL=1 selects the long versions of the tests.
- `KillableServer`: tests/live_server.py's LiveServer plus SIGKILL and restart on the
  same database, optionally with other settings.
- `RawHttp`: a minimal HTTP/1.1 keep-alive client on asyncio streams. Hundreds of
  connections cost the test process little CPU, which matters on a 2-core machine where
  the client and the server under test share the cores.
- `claim_text`: distinct claims made of rare made-up words, so the near-duplicate search
  has nothing to compare (it is not what these tests measure).
- `integrity_report`: database-level checks after a crash or a run (no orphans, search
  index in step, SQLite's own integrity check).
"""

import asyncio
import contextlib
import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.config import Settings
from tests.live_server import LiveServer

FULL = os.environ.get("CLAIMLEDGER_RELIABILITY_FULL", "") not in ("", "0", "false", "no")

SYLLABLES = [c + v for c in "bdklmnrstvz" for v in "aeiou"]


def claim_text(rng: random.Random, tag: str, words: int = 8) -> str:
    """A claim nobody else wrote: a unique tag and made-up rare words, no common word.

    (Claims sharing common words share MinHash bands, and then every write scores the
    claims in those bands: the cost grows with the ledger.)
    """
    rare = " ".join("".join(rng.choices(SYLLABLES, k=4)) for _ in range(words))
    return f"{tag} {rare}."


# --- a server that can be killed ------------------------------------------------------


class KillableServer(LiveServer):
    """The live server, plus SIGKILL (no shutdown of any kind) and restart."""

    def __init__(self, settings: Settings, log_path: Path):
        super().__init__(settings, log_path)
        self.kills = 0

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, exactly like a power cut for the app."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.kills += 1

    def restart(self) -> "KillableServer":
        self.kill()
        return self.start()  # type: ignore[return-value]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


# --- a small HTTP/1.1 client ------------------------------------------------------------


class ConnectionLost(Exception):
    """The server closed the connection or it broke before a full response arrived."""


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class RawHttp:
    """One keep-alive connection; reconnects when the server closed it between requests."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None):
        self.host, self.port = host, port
        self.base_headers = headers or {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @classmethod
    def for_url(cls, url: str, headers: dict[str, str] | None = None) -> "RawHttp":
        host, port = url.removeprefix("http://").split(":")
        return cls(host, int(port), headers)

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      body: bytes | None = None, headers: dict[str, str] | None = None
                      ) -> Response:
        if json_body is not None:
            body = json.dumps(json_body).encode()
        all_headers = {"Host": f"{self.host}:{self.port}", **self.base_headers, **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
            all_headers["Content-Length"] = str(len(body))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(head.encode("latin-1") + (body or b""))
            await self.writer.drain()
            return await self._read_response(method)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc

    async def _read_response(self, method: str) -> Response:
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before the response")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, body)


# --- database checks --------------------------------------------------------------------

# (what, SQL counting rows that break it). Every row here must count 0.
ORPHAN_CHECKS = [
    ("attribution without its claim",
     "SELECT count(*) FROM attribution a LEFT JOIN claim c ON c.id = a.claim_id "
     "WHERE c.id IS NULL"),
    ("attribution without its source",
     "SELECT count(*) FROM attribution a LEFT JOIN source s ON s.id = a.source_id "
     "WHERE s.id IS NULL"),
    ("review without its claim",
     "SELECT count(*) FROM review r LEFT JOIN claim c ON c.id = r.claim_id WHERE c.id IS NULL"),
    ("link without its claim",
     "SELECT count(*) FROM claim_link l LEFT JOIN claim c ON c.id = l.claim_id "
     "WHERE c.id IS NULL"),
    ("link without its target",
     "SELECT count(*) FROM claim_link l LEFT JOIN claim c ON c.id = l.target_id "
     "WHERE c.id IS NULL"),
    ("topic without its claim",
     "SELECT count(*) FROM claim_topic t LEFT JOIN claim c ON c.id = t.claim_id "
     "WHERE c.id IS NULL"),
    ("band without its claim",
     "SELECT count(*) FROM claim_band b LEFT JOIN claim c ON c.id = b.claim_id "
     "WHERE c.id IS NULL"),
    ("source name without its source",
     "SELECT count(*) FROM source_name n LEFT JOIN source s ON s.id = n.source_id "
     "WHERE s.id IS NULL"),
    ("claim merged into a claim that does not exist",
     "SELECT count(*) FROM claim c LEFT JOIN claim d ON d.id = c.duplicate_of "
     "WHERE c.duplicate_of IS NOT NULL AND d.id IS NULL"),
    ("claim without its claim.created event",
     "SELECT count(*) FROM claim c WHERE NOT EXISTS (SELECT 1 FROM event e "
     "WHERE e.claim_id = c.id AND e.action = 'claim.created')"),
    ("claim whose status is not its latest review's",
     "SELECT count(*) FROM claim c WHERE c.status <> coalesce((SELECT r.to_status FROM review r "
     "WHERE r.claim_id = c.id ORDER BY r.created_at DESC, r.id DESC LIMIT 1), 'unverified')"),
]

SEARCH_CHECKS = {
    "postgresql": [
        ("claim missing from the search index",
         "SELECT count(*) FROM claim c LEFT JOIN claim_search s ON s.claim_id = c.id "
         "WHERE s.claim_id IS NULL"),
        ("search row without its claim",
         "SELECT count(*) FROM claim_search s LEFT JOIN claim c ON c.id = s.claim_id "
         "WHERE c.id IS NULL"),
    ],
    "sqlite": [
        ("claim missing from the search index",
         "SELECT count(*) FROM claim c LEFT JOIN claim_search_doc d ON d.claim_id = c.id "
         "WHERE d.claim_id IS NULL"),
        ("search document without its claim",
         "SELECT count(*) FROM claim_search_doc d LEFT JOIN claim c ON c.id = d.claim_id "
         "WHERE c.id IS NULL"),
        ("full-text rows != search documents",
         "SELECT (SELECT count(*) FROM claim_search) - (SELECT count(*) FROM claim_search_doc)"),
        ("full-text row without its document",
         "SELECT count(*) FROM claim_search s WHERE s.rowid NOT IN "
         "(SELECT rowid FROM claim_search_doc)"),
    ],
}


def integrity_report(engine: sa.Engine) -> dict[str, Any]:
    """Every broken rule -> how many rows break it, plus the database's own verdict.

    An empty dict means all is well. On SQLite that includes `PRAGMA integrity_check` ==
    ok and an empty `PRAGMA foreign_key_check`; on PostgreSQL the foreign keys are enforced
    by the server, and the queries check every relation explicitly anyway.
    """
    problems: dict[str, Any] = {}
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "sqlite":
            verdict = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
            if verdict != ["ok"]:
                problems["PRAGMA integrity_check"] = verdict[:10]
            fk = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if fk:
                problems["PRAGMA foreign_key_check"] = [tuple(r) for r in fk[:10]]
            # FTS5's own consistency check raises when the index is corrupt.
            try:
                conn.exec_driver_sql(
                    "INSERT INTO claim_search(claim_search) VALUES ('integrity-check')")
                conn.rollback()
            except sa.exc.DatabaseError as exc:
                problems["fts5 integrity-check"] = str(exc.orig)
        for what, sql in ORPHAN_CHECKS + SEARCH_CHECKS[dialect]:
            count = conn.exec_driver_sql(sql).scalar_one()
            if count:
                problems[what] = count
    return problems


def search_rows(engine: sa.Engine) -> int:
    """Rows in the full-text index (PostgreSQL tsvector table, or SQLite FTS5 table)."""
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM claim_search").scalar_one()


def table_counts(engine: sa.Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in tables}
