"""Idempotency-Key: a retried POST replays the first response instead of acting twice.

The key is claimed (a pending record, committed on its own) before the work starts,
so a concurrent retry sees it and gets 409; the response is stored in the same
transaction as the business rows, so a crash leaves either both or neither.
"""

import hashlib
import random
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete

from app.db import Database
from app.errors import BadRequest, Conflict, Unprocessable
from app.models import IdempotencyRecord, utcnow

MAX_KEY_LENGTH = 255


class Replay(Exception):
    """The stored response of an earlier request with the same key and body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str]):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method} {path}?{query}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


class Idempotency:
    """One request's claim on an idempotency key (inactive when no key was sent)."""

    def __init__(self, db: Database | None = None, api_key_id: str = "", key: str | None = None,
                 digest: str = "", *, pending_seconds: float = 120, ttl_hours: float = 48):
        self.db, self.api_key_id, self.key, self.digest = db, api_key_id, key, digest
        self.pending_seconds, self.ttl_hours = pending_seconds, ttl_hours
        self.saved = False

    @property
    def active(self) -> bool:
        return self.key is not None

    def begin(self) -> None:
        """Claim the key, or raise Replay (done, same body), 409 (in flight) or 422 (other body)."""
        assert self.db is not None and self.key is not None
        with self.db.write_session() as session:
            record = session.get(IdempotencyRecord, (self.api_key_id, self.key))
            if record is not None:
                self._judge(record)
                record.started_at = utcnow()  # an abandoned claim is taken over
                session.add(record)
            else:
                session.add(IdempotencyRecord(api_key_id=self.api_key_id, key=self.key,
                                              request_hash=self.digest))
            try:
                session.commit()
            except IntegrityError:
                raise Conflict("a request with this Idempotency-Key is in progress; retry "
                               "after it finishes", headers={"Retry-After": "1"}) from None

    def _judge(self, record: IdempotencyRecord) -> None:
        if record.request_hash != self.digest:
            raise Unprocessable("this Idempotency-Key was used with a different request; "
                                "use a new key for a new request")
        if record.done:
            raise Replay(record.status_code or 200, record.response_body,
                         record.response_headers)
        age = (utcnow() - record.started_at).total_seconds()
        if age < self.pending_seconds:
            raise Conflict("a request with this Idempotency-Key is in progress; retry after it "
                           "finishes", headers={"Retry-After": "1"})

    def save(self, session: Session, *, status: int, body: Any,
             headers: dict[str, str] | None = None) -> None:
        """Store the response in the caller's transaction (no-op without a key)."""
        if not self.active:
            return
        record = session.get(IdempotencyRecord, (self.api_key_id, self.key))
        if record is None:  # purged while we worked: claim it again, in this transaction
            record = IdempotencyRecord(api_key_id=self.api_key_id, key=self.key,
                                       request_hash=self.digest)
        record.done = True
        record.status_code = status
        record.response_body = body.model_dump(mode="json") if hasattr(body, "model_dump") \
            else body
        record.response_headers = headers or {}
        session.add(record)
        self.saved = True
        if random.random() < 0.01:
            purge(session, older_than=timedelta(hours=self.ttl_hours))

    def release(self) -> None:
        """Drop a pending claim whose request failed, so a retry can run."""
        if not self.active or self.saved or self.db is None:
            return
        with self.db.write_session() as session:
            session.exec(delete(IdempotencyRecord).where(
                col(IdempotencyRecord.api_key_id) == self.api_key_id,
                col(IdempotencyRecord.key) == self.key,
                col(IdempotencyRecord.done).is_(False)))
            session.commit()


def purge(session: Session, *, older_than: timedelta) -> int:
    """Forget keys older than the retention window."""
    result = session.exec(delete(IdempotencyRecord).where(
        col(IdempotencyRecord.created_at) < utcnow() - older_than))
    return result.rowcount or 0
