"""Group commit for `POST /v1/claims`: concurrent requests share one transaction.

One request at a time per transaction spends most of its time in per-statement overhead
(a dozen ORM round trips, then a commit), and writers are serialised anyway (SQLite has
one writer; PostgreSQL write transactions take one lock). So requests queue here and a
single writer takes everything queued, checks each request on its own (a bad one fails
alone), inserts the rest with bulk statements and commits once. Each request is answered
only after the commit that holds its claim, so an acknowledged write is durable.

If a batch fails as a whole (an error no check foresaw), its requests are retried one by
one, so one request's problem never becomes another's.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app import crud, ingest, similarity
from app.db import Database
from app.errors import AppError, Conflict
from app.idempotency import Idempotency
from app.models import ClaimCreate, ClaimCreated, SimilarClaim
from app.text import fingerprint

MAX_BATCH = 64


@dataclass
class _Job:
    claim_in: ClaimCreate
    actor: str
    idem: Idempotency
    future: asyncio.Future = field(repr=False)


class ClaimWriter:
    """Queues claim creations and writes whatever is queued together, one batch at a time."""

    def __init__(self, db: Database, *, threshold: float, max_batch: int = MAX_BATCH,
                 linger: float = 0.002, on_batch: Any = None):
        self.db, self.threshold, self.max_batch, self.linger = db, threshold, max_batch, linger
        self.on_batch = on_batch  # called with each batch's size (metrics)
        self._queue: list[_Job] = []
        self._draining: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def create(self, claim_in: ClaimCreate, *, actor: str,
                     idem: Idempotency) -> ClaimCreated:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): start afresh
            self._loop, self._queue, self._draining = loop, [], None
        job = _Job(claim_in, actor, idem, loop.create_future())
        self._queue.append(job)
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain())
        return await job.future

    async def _drain(self) -> None:
        last = 0
        while self._queue:
            if len(self._queue) < last // 2:
                # Under load, the requests answered by the last batch come back within a
                # few milliseconds: wait for them rather than commit a handful alone
                # (each commit has a fixed cost of several milliseconds).
                await asyncio.sleep(self.linger)
            batch = self._queue[:self.max_batch]
            last = len(batch)
            del self._queue[:self.max_batch]
            try:
                outcomes = await run_in_threadpool(self._write, batch)
            except asyncio.CancelledError:  # the loop is shutting down: stop waiting
                for job in batch + self._queue:
                    job.future.cancel()
                raise
            except Exception as exc:  # _write answers every job; this is a last resort
                outcomes = [exc] * len(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():  # the request was cancelled meanwhile
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    def _write(self, batch: list[_Job]) -> list[ClaimCreated | BaseException]:
        """Write a batch in one transaction; on a batch-wide failure, each job alone."""
        try:
            with self.db.write_session() as session:
                outcomes = create_claims(session, [(j.claim_in, j.actor) for j in batch],
                                         threshold=self.threshold)
                for job, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, ClaimCreated):
                        job.idem.save(session, status=201, body=outcome,
                                      headers=headers_of(outcome))
                session.commit()
            if self.on_batch is not None:
                self.on_batch(len(batch))
            return outcomes
        except Exception as exc:
            for job in batch:
                job.idem.saved = False
            if len(batch) == 1:
                return [exc]
            return [self._write([job])[0] for job in batch]


def headers_of(claim: ClaimCreated) -> dict[str, str]:
    return {"ETag": f'"{claim.version}"', "Location": f"/v1/claims/{claim.id}"}


def create_claims(
    session: Session, items: list[tuple[ClaimCreate, str]], *, threshold: float,
) -> list[ClaimCreated | AppError]:
    """Create each claim as `crud.create_claim` would, in bulk; a failing item fails alone.

    Items are taken in order: an item sees the claims of the items before it (as likely
    duplicates, and for origin + external_id conflicts), as if they had committed first.
    """
    outcomes: list[ClaimCreated | AppError | None] = [None] * len(items)
    claims = dict(enumerate(claim_in for claim_in, _ in items))
    crud.lock_claims(session, claims.values())
    sources, failed = ingest.check_source_ids(session, claims)
    for i, error in failed.items():
        outcomes[i] = error
    new = {i: ingest.new_claim(claim_in, actor=items[i][1]) for i, claim_in in claims.items()}
    _reject_taken_external_ids(session, claims, new, outcomes)
    sources.update(ingest.resolve_names(session, claims, lambda i: items[i][1]))
    near = similarity.similar_batch(session, {i: (c.id, c.text) for i, c in new.items()},
                                    threshold=threshold, limit=10)
    by_actor: dict[str, dict[int, Any]] = {}
    for i in new:
        by_actor.setdefault(items[i][1], {})[i] = new[i]
    for actor, group in by_actor.items():
        publics = ingest.insert_new(session, group, claims, sources, actor=actor, via=None)
        for i, public in zip(group, publics, strict=True):
            fp = fingerprint(claims[i].text)
            outcomes[i] = ClaimCreated.model_validate({**dict(public), "likely_duplicates": [
                    SimilarClaim(claim_id=m.claim_id, text=m.text, status=m.status,
                                 score=m.score, exact=m.fingerprint == fp)
                for m in near.get(i, [])]})
    return outcomes  # type: ignore[return-value]


def _reject_taken_external_ids(session: Session, claims: dict[int, ClaimCreate],
                               new: dict[int, ingest.NewClaim], outcomes: list[Any]) -> None:
    """origin + external_id must be new: taken ones (or repeated in the batch) are 409."""
    taken = ingest.existing_by_external_id(session, claims.values())
    for i, claim_in in list(claims.items()):
        if claim_in.origin is None:
            continue
        key = (claim_in.origin, claim_in.external_id)
        if key in taken:
            outcomes[i] = Conflict(
                f"a claim from {claim_in.origin} with external_id {claim_in.external_id} "
                f"already exists: {taken[key]}", claim_id=taken[key])
            del claims[i], new[i]
        else:
            taken[key] = new[i].id
