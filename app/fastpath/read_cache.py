"""Claims from rendered JSON (`GET /v1/claims/{id}`, list and search pages), reused while
nothing they show has changed.

Rendering a claim takes five queries and a pydantic round; checking that a rendered copy
is still current takes one small query. What a claim shows changes only with the claim's
version (every write to the claim, its attributions, links or reviews bumps it) or with
a source it cites (name, kind, reliability: the sum of their `version`s, which needs no
clock to agree). So each copy is stored with that pair and served while a fresh read
of the pair matches; any worker may change the database, and every request still
checks it. Bounded: least recently used copies go.
"""

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlmodel import Session

from app.db import Database
from app.domain import claims, rendering
from app.errors import NotFound

# A claim's stamp: its version and the sum of its sources' versions. One FROM for both
# the single claim (GET) and a page of them.
_STAMP_FROM = ("FROM claim AS c LEFT JOIN attribution AS a ON a.claim_id = c.id "
               "LEFT JOIN source AS s ON s.id = a.source_id ")
_STAMP = sa.text(f"SELECT c.version, sum(s.version) {_STAMP_FROM}"
                 "WHERE c.id = :id GROUP BY c.version")
_STAMP_SQLITE = str(_STAMP).replace(":id", "?")
_STAMPS = sa.text(f"SELECT c.id, c.version, sum(s.version) {_STAMP_FROM}"
                  "WHERE c.id IN :ids GROUP BY c.id, c.version"
                  ).bindparams(sa.bindparam("ids", expanding=True))


class ClaimCache:
    def __init__(self, db: Database, *, size: int = 4096, counter: Any = None):
        self.db, self.size = db, size
        self._entries: OrderedDict[str, tuple[Any, bytes, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = counter  # a Prometheus counter labelled by result (hit / miss)
        self._reader: sqlite3.Connection | None = None

    def current(self, claim_id: str) -> tuple[bytes, int] | None:
        """A copy known to be current, checked on the calling thread; None otherwise.

        SQLite only, on a read-only connection of its own (never the pool's, so the event
        loop can never wait on a connection a thread holds): checking takes microseconds
        and saves the thread hop, which costs more than the rest of the request.
        """
        if not self.db.is_sqlite:
            return None
        entry = self._entries.get(claim_id)
        if entry is None:
            return None
        try:
            if self._reader is None:
                path = quote(self.db.engine.url.database or "", safe="/")
                self._reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                               timeout=0.05, check_same_thread=False)
            row = self._reader.execute(_STAMP_SQLITE, (claim_id,)).fetchone()
        except sqlite3.Error:
            return None  # busy or gone: the thread path decides
        if row is None or tuple(row) != entry[0]:
            return None
        self._count("hit")
        return entry[1], entry[2]

    def _count(self, result: str, n: int = 1) -> None:
        if self._counter is not None and n:
            self._counter.labels(result).inc(n)

    def render(self, session: Session, ids: Sequence[str]) -> list[bytes]:
        """The JSON of each of these claims (a page, in order), reusing current copies.

        One stamp query for the page; the claims without a current copy are rendered
        together (rendering.claims_by_id) and kept, filed under the stamp read before them.
        """
        if not ids:
            return []
        stamps = {cid: (version, newest) for cid, version, newest in session.connection()
                  .execute(_STAMPS, {"ids": list(ids)})}
        bodies: dict[str, bytes] = {}
        with self._lock:
            for cid in ids:
                entry = self._entries.get(cid)
                if entry is not None and entry[0] == stamps.get(cid):
                    self._entries.move_to_end(cid)
                    bodies[cid] = entry[1]
        missing = [cid for cid in ids if cid not in bodies]
        self._count("hit", len(bodies))
        self._count("miss", len(missing))
        for public in rendering.claims_by_id(session, missing) if missing else ():
            body = bodies[public.id] = public.__pydantic_serializer__.to_json(public)
            if public.id in stamps:
                self._store(public.id, stamps[public.id], body, public.version)
        return [bodies[cid] for cid in ids if cid in bodies]  # any deleted meanwhile: gone

    def _store(self, claim_id: str, stamp: tuple[Any, ...], body: bytes, version: int) -> None:
        with self._lock:
            self._entries[claim_id] = (stamp, body, version)
            self._entries.move_to_end(claim_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def get(self, claim_id: str) -> tuple[bytes, int]:
        """The claim's JSON and version; NotFound if there is no such claim. Blocking."""
        with self.db.engine.connect() as conn:
            row = conn.execute(_STAMP, {"id": claim_id}).first()
        if row is None:
            with self._lock:
                self._entries.pop(claim_id, None)
            raise NotFound(f"claim {claim_id} does not exist")
        stamp = tuple(row)
        with self._lock:
            entry = self._entries.get(claim_id)
            if entry is not None and entry[0] == stamp:
                self._entries.move_to_end(claim_id)
                self._count("hit")
                return entry[1], entry[2]
        self._count("miss")
        # Read after the stamp: the copy is at least as new as the stamp it is filed under,
        # so a stale copy can never match a later stamp.
        with self.db.session() as session:
            public = rendering.claim_public(session, claims.get_claim(session, claim_id))
        body = public.__pydantic_serializer__.to_json(public)
        self._store(claim_id, stamp, body, public.version)
        return body, public.version
