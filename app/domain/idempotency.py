"""Idempotency-Key: a retried POST replays the first response instead of acting twice.

The key is claimed (a pending record, committed on its own) before the work starts,
so a concurrent retry sees it and gets 409; the response is stored in the same
transaction as the business rows, so a crash leaves either both or neither.

A claim names its owner: the server instance (process) that runs it, which keeps a
heartbeat row fresh (`Heartbeat`). A retry that finds a claim whose owner has stopped
beating (killed, crashed, shut down) takes it over at once; a claim whose owner beats is
in flight (409). Claims with no known owner fall back to their age. Beats and claims are
stamped, and judged, with the database's clock (`database_now`), never a server's own:
one server's clock running behind or ahead must not make a live one look dead, or a
dead one alive. Each claim also has
its own token, checked when the response is stored: a request whose claim was taken
over (its owner only looked dead) fails with 409 and writes nothing, so the work is
never done twice whoever finishes first.
"""

import asyncio
import hashlib
import json
import logging
import math
import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete

from app.db import Database
from app.errors import BadRequest, Conflict, Unprocessable
from app.models import IdempotencyRecord, Instance, utcnow

MAX_KEY_LENGTH = 255
IN_PROGRESS = "a request with this Idempotency-Key is in progress"
# Heartbeat rows silent this long are deleted (a missing row counts as dead anyway).
FORGET_INSTANCES_AFTER = timedelta(hours=1)
FORGET_EVERY_BEATS = 100

log = logging.getLogger("claimledger")


class Replay(Exception):
    """The stored response of an earlier request with the same key and body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str]):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


def request_hash(method: str, path: str, query: str, body: bytes,
                 content_type: str = "application/json") -> str:
    """What makes two requests the same: method, path, query and the body's content, so a
    retry that serialises the same JSON differently (key order, spacing) is the same request."""
    digest = hashlib.sha256(f"{method} {path}?{query}\n".encode())
    digest.update(canonical_body(body, content_type))
    return digest.hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def canonical_body(body: bytes, content_type: str) -> bytes:
    """JSON bodies as parsed JSON dumped canonically (sorted keys, no spaces); NDJSON line by
    line; anything that does not parse (it will be refused anyway) as its bytes."""
    media = content_type.split(";")[0].strip().lower()
    try:
        if media in ("application/x-ndjson", "application/jsonl"):
            lines = body.decode("utf-8").splitlines()
            return b"ndjson\n" + b"\n".join(_canonical(json.loads(line)) for line in lines
                                             if line.strip())
        if media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json")):
            return b"json\n" + _canonical(json.loads(body))
    except (ValueError, RecursionError):
        pass
    return b"raw\n" + body


def database_now(session: Session) -> datetime:
    """The database's clock (UTC), the one clock every server shares."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(sa.select(sa.func.clock_timestamp())).scalar_one() \
            .astimezone(UTC)
    # SQLite runs on one host: its clock is every server's clock.
    stamp = session.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")) \
        .scalar_one()
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


class Heartbeat:
    """This process's row in `instance`, refreshed every `interval` seconds while it runs.

    A beat is one short statement. On PostgreSQL it runs outside the lock every write
    transaction takes (it touches no row anyone else writes), so a long ingest never
    delays it; on SQLite it goes through the write gate like every writer (writing past
    it would fail others' transactions with SQLITE_BUSY_SNAPSHOT) and holds it for one
    statement. A failed beat (database busy or down) is logged and tried again next time:
    it never fails the app, and at worst another instance takes over a claim early, which
    the claim token makes safe.
    """

    def __init__(self, db: Database, *, interval: float, timeout: float):
        self.db, self.interval, self.timeout = db, interval, timeout
        self.instance_id = secrets.token_hex(16)
        self.beats = 0
        self.registered = False  # a beat has been committed: claims may name this instance
        self._failing = False

    def beat(self) -> bool:
        """Refresh this instance's row (insert it the first time); False if that failed."""
        try:
            with (self.db.write_session() if self.db.is_sqlite else self.db.session()) \
                    as session:
                now = database_now(session)
                refreshed = session.exec(update(Instance)  # type: ignore[call-overload]
                                         .where(col(Instance.id) == self.instance_id)
                                         .values(last_seen_at=now)).rowcount
                if not refreshed:
                    session.add(Instance(id=self.instance_id, last_seen_at=now))
                if self.beats % FORGET_EVERY_BEATS == 0:
                    session.exec(delete(Instance).where(
                        col(Instance.last_seen_at) < now - FORGET_INSTANCES_AFTER,
                        col(Instance.id) != self.instance_id))
                session.commit()
        except Exception as exc:  # the next beat tries again; the app goes on serving
            if not self._failing:
                log.warning("instance heartbeat failed: %s: %s", type(exc).__name__, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("instance heartbeat recovered")
        self._failing = False
        self.beats += 1
        self.registered = True
        return True

    async def run(self) -> None:
        """Beat every `interval` seconds until cancelled (the app's lifespan owns this)."""
        limiter = anyio.CapacityLimiter(1)  # a thread of its own, never queued behind requests
        while True:
            await asyncio.sleep(self.interval)
            await anyio.to_thread.run_sync(self.beat, limiter=limiter)

    def stop(self, timeout: float | None = None) -> None:
        """Remove this instance's row at shutdown: claims still naming it are abandoned.

        Waits at most `timeout` for the write gate: shutdown must end whoever holds it."""
        try:
            with (self.db.write_session(gate_timeout=timeout) if self.db.is_sqlite
                  else self.db.session()) as session:
                session.exec(delete(Instance).where(col(Instance.id) == self.instance_id))
                session.commit()
        except Exception as exc:  # it goes stale instead, and is taken for dead a bit later
            log.warning("could not remove the instance heartbeat: %s: %s",
                        type(exc).__name__, exc)


class Idempotency:
    """One request's claim on an idempotency key (inactive when no key was sent)."""

    def __init__(self, db: Database | None = None, api_key_id: str = "", key: str | None = None,
                 digest: str = "", *, pending_seconds: float = 120, ttl_hours: float = 48,
                 heartbeat: Heartbeat | None = None):
        self.db, self.api_key_id, self.key, self.digest = db, api_key_id, key, digest
        self.pending_seconds, self.ttl_hours = pending_seconds, ttl_hours
        self.heartbeat = heartbeat
        self.token = secrets.token_hex(16)
        self.saved = False

    @classmethod
    def configured(cls, db: Database, settings: Any, api_key_id: str, key: str, digest: str,
                   heartbeat: Heartbeat | None = None) -> "Idempotency":
        """A key's claim with the deployment's pending time and time to live (`settings`)."""
        return cls(db, api_key_id, key, digest,
                   pending_seconds=settings.idempotency_pending_seconds,
                   ttl_hours=settings.idempotency_ttl_hours, heartbeat=heartbeat)

    @property
    def active(self) -> bool:
        return self.key is not None

    def begin(self) -> None:
        """Claim the key, or raise Replay (done, same body), 409 (in flight) or 422 (other body)."""
        assert self.db is not None and self.key is not None
        heartbeat = self.heartbeat
        with self.db.write_session() as session:
            record = session.get(IdempotencyRecord, (self.api_key_id, self.key))
            now = database_now(session)  # the clock _until_takeover judges started_at by
            if record is not None:
                self._judge(session, record, now=now)
                record.started_at = now  # an abandoned claim is taken over
            else:
                record = IdempotencyRecord(api_key_id=self.api_key_id, key=self.key,
                                           request_hash=self.digest, started_at=now)
            record.instance_id = heartbeat.instance_id \
                if heartbeat is not None and heartbeat.registered else None
            record.claim_token = self.token
            session.add(record)
            try:
                session.commit()
            except IntegrityError:
                raise Conflict(f"{IN_PROGRESS}; retry after it finishes",
                               headers={"Retry-After": "1"}) from None

    def _judge(self, session: Session, record: IdempotencyRecord, *, now: datetime) -> None:
        if record.request_hash != self.digest:
            raise Unprocessable("this Idempotency-Key was used with a different request; "
                                "use a new key for a new request")
        if record.done:
            raise Replay(record.status_code or 200, record.response_body,
                         record.response_headers)
        wait, beating = self._until_takeover(session, record, now=now)
        if wait <= 0:
            return
        if beating:  # it may finish any moment
            raise Conflict(f"{IN_PROGRESS}; retry after it finishes",
                           headers={"Retry-After": "1"})
        seconds = math.ceil(wait)
        raise Conflict(f"{IN_PROGRESS}, but its server has gone quiet; if it has stopped, a "
                       f"retry in {seconds} s takes the key over",
                       headers={"Retry-After": str(seconds)})

    def _until_takeover(self, session: Session, record: IdempotencyRecord, *,
                        now: datetime) -> tuple[float, bool]:
        """(Seconds until this pending claim may be taken over, whether its owner beats);
        `now` is the database's clock, which stamped the claim and the owner's beats."""
        by_age = self.pending_seconds - (now - record.started_at).total_seconds()
        heartbeat = self.heartbeat
        if by_age <= 0 or record.instance_id is None or heartbeat is None:
            return by_age, True
        if record.instance_id == heartbeat.instance_id:
            return by_age, True  # this process's own request, so still running
        owner = session.get(Instance, record.instance_id)
        if owner is None:
            return 0.0, False  # shut down, or forgotten long after it stopped
        silent = (now - owner.last_seen_at).total_seconds()
        return min(by_age, heartbeat.timeout - silent), silent <= 2 * heartbeat.interval

    def save(self, session: Session, *, status: int, body: Any,
             headers: dict[str, str] | None = None) -> None:
        """Store the response in the caller's transaction (no-op without a key)."""
        if not self.active:
            return
        record = session.get(IdempotencyRecord, (self.api_key_id, self.key))
        if record is None:  # purged while we worked: claim it again, in this transaction
            record = IdempotencyRecord(api_key_id=self.api_key_id, key=self.key,
                                       request_hash=self.digest, claim_token=self.token)
        elif record.done or record.claim_token != self.token:
            # Our server looked dead to another, and a retry took the key over: only one
            # of us may write. Raising here rolls this request's work back.
            raise Conflict(f"{IN_PROGRESS} elsewhere: a retry took this Idempotency-Key "
                           "over while this request ran, and this request wrote nothing; "
                           "retry to get its response", headers={"Retry-After": "1"})
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
                col(IdempotencyRecord.done).is_(False),
                col(IdempotencyRecord.claim_token) == self.token))  # not a retry's claim
            session.commit()


def purge(session: Session, *, older_than: timedelta) -> int:
    """Forget keys older than the retention window."""
    result = session.exec(delete(IdempotencyRecord).where(
        col(IdempotencyRecord.created_at) < utcnow() - older_than))
    return result.rowcount or 0
