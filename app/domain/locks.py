"""Advisory locks that serialise competing writers (PostgreSQL; SQLite has one writer).

Taken in one order in every transaction (claims, source names, then the event feed),
so nothing deadlocks.
"""

import hashlib
from collections.abc import Iterable

import sqlalchemy as sa
from sqlmodel import Session

from app.db import WRITE_LOCK_ID
from app.domain.text import fingerprint, name_key
from app.fastpath.bulk import pg_array
from app.models import (
    ClaimCreate,
)


def lock_event_feed(session: Session) -> None:
    """Hold the feed's ordering lock until commit (PostgreSQL; SQLite has one writer anyway).

    Event ids come from a sequence, which hands them out before commit; holding this
    lock until commit makes ids visible in order, so a feed reader that resumes after
    id N can never miss an N-1 that committed late.
    """
    if session.get_bind().dialect.name == "postgresql" and not session.info.get("event_lock"):
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_ID})
        session.info["event_lock"] = True


_SOURCE_NAME_LOCK_BUCKETS = 64  # as for claims: a batch may name 100,000 new sources


def lock_source_names(session: Session, names: Iterable[str]) -> None:
    """Serialise transactions creating sources of the same names (PostgreSQL)."""
    lock_source_keys(session, {name_key(n) for n in names})


def lock_source_keys(session: Session, keys: Iterable[str]) -> None:
    """`lock_source_names` of names already keyed (`name_key`).

    Taken before anything but the claim locks in the transaction, so two batches naming
    the same new sources queue instead of both creating them or deadlocking. Keys are
    hashed into buckets locked in order, in one statement: one lock a name was a round
    trip each and overflowed the lock table for a batch of many new names.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    buckets = sorted({_bucket(key, _SOURCE_NAME_LOCK_BUCKETS) for key in keys})
    if buckets:
        session.execute(sa.text("SELECT count(pg_advisory_xact_lock(7262, b)) "
                                "FROM unnest(CAST(:b AS integer[])) AS b"),
                        {"b": pg_array(buckets)})


def _bucket(key: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % buckets


_CLAIM_LOCK_BUCKETS = 64  # a batch holds at most this many claim locks, whatever its size


def lock_claims(session: Session, claims: Iterable[ClaimCreate]) -> None:
    """Serialise transactions creating claims of the same text or origin + external_id (PostgreSQL).

    Without it, two overlapping batches both insert a shared item: a duplicate, or a 500 on
    the unique origin + external_id. Keys are hashed into buckets locked in order, before
    source names and the event feed, so nothing deadlocks and the lock table stays small.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = set()
    for claim_in in claims:
        keys.add(f"text:{fingerprint(claim_in.text)}")
        if claim_in.origin is not None:
            keys.add(f"external:{claim_in.origin}\n{claim_in.external_id}")
    buckets = sorted({_bucket(k, _CLAIM_LOCK_BUCKETS) for k in keys})
    if buckets:
        session.execute(sa.text("SELECT count(pg_advisory_xact_lock(7263, b)) "
                                "FROM unnest(CAST(:b AS integer[])) AS b"),
                        {"b": pg_array(buckets)})
