"""Group commit for `POST /v1/claims`: concurrent requests share one transaction.

One request at a time per transaction spends most of its time in per-statement overhead
(a dozen ORM round trips, then a commit), and writers are serialised anyway (SQLite has
one writer; PostgreSQL write transactions take one lock). So requests queue here and a
single writer takes everything queued, checks each request on its own (a bad one fails
alone), inserts the rest with bulk statements and commits once. Each request is answered
only after the commit that holds its claim, so an acknowledged write is durable.

If a batch fails as a whole (an error no check foresaw), its requests are retried one by
one, so one request's problem never becomes another's.

Where the writing runs: `claimledger serve` gives each worker a writer process of its
own (`WriterProcess`, on by default: CLAIMLEDGER_WRITER_PROCESS). The worker parses,
authenticates and validates; the writer process checks for duplicates, inserts, commits
and renders the response, on the other core, outside the worker's GIL. A worker whose
writer process cannot start, or an app given its database (tests), writes in a thread.
"""

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app import errors
from app.config import Settings
from app.db import Database
from app.domain import ingest, locks, similarity
from app.domain.idempotency import Idempotency
from app.domain.text import fingerprint
from app.errors import AppError, Conflict, Unavailable
from app.models import ClaimCreate, ClaimCreated, SimilarClaim
from app.server.heap import settle_heap

MAX_BATCH = 64
MERGED_MAX = 256  # the most claims a writer process writes in one transaction
STARTUP_SECONDS = 60.0
# The writer process's name in ps and top (Linux: /proc/PID/comm, at most 15 characters).
PROCESS_NAME = "cl-writer"

log = logging.getLogger("claimledger")


@dataclass(frozen=True)
class Written:
    """A created claim's response: its JSON and headers (ETag, Location)."""

    body: bytes
    headers: dict[str, str]


@dataclass
class _Job:
    claim_in: ClaimCreate
    actor: str
    idem: Idempotency
    future: asyncio.Future = field(repr=False)


class ClaimWriter:
    """Queues claim creations and writes whatever is queued together, one batch at a time.

    With a writer process, the next batch is sent while the last is being written (up
    to `PIPELINE` batches outstanding), so neither side waits for the other; the process
    writes them in order, one transaction each.
    """

    PIPELINE = 4

    def __init__(self, db: Database, *, threshold: float, max_batch: int = MAX_BATCH,
                 linger: float = 0.002, on_batch: Any = None,
                 process: "WriterProcess | None" = None):
        self.db, self.threshold, self.max_batch, self.linger = db, threshold, max_batch, linger
        self.on_batch = on_batch  # called with the claims each batch committed (metrics)
        self.process = process
        self._queue: list[_Job] = []
        self._draining: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._last = 0  # the size of the last batch taken
        self._writing: set[asyncio.Task] = set()

    async def create(self, claim_in: ClaimCreate, *, actor: str,
                     idem: Idempotency) -> Written:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): start afresh
            self._loop, self._queue, self._draining = loop, [], None
            self._slots = asyncio.Semaphore(self.PIPELINE if self.process else 1)
        job = _Job(claim_in, actor, idem, loop.create_future())
        self._queue.append(job)
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain())
        return await job.future

    async def _drain(self) -> None:
        assert self._slots is not None and self._loop is not None
        while self._queue:
            await self._slots.acquire()  # a batch in flight has finished (or none was)
            if len(self._queue) < self._last // 2:
                # Under load, the requests answered by the last batch come back within a
                # few milliseconds: wait for them rather than commit a handful alone
                # (each commit has a fixed cost of several milliseconds).
                await asyncio.sleep(self.linger)
            batch = self._queue[:self.max_batch]
            self._last = len(batch)
            del self._queue[:self.max_batch]
            task = self._loop.create_task(self._write(batch))
            self._writing.add(task)  # the loop holds tasks weakly
            task.add_done_callback(self._writing.discard)

    async def _write(self, batch: list[_Job]) -> None:
        assert self._slots is not None
        items = [(job.claim_in, job.actor, job.idem) for job in batch]
        try:
            if self.process is not None:
                outcomes = await asyncio.wrap_future(
                    await run_in_threadpool(self.process.submit, items))
            else:
                outcomes = await run_in_threadpool(
                    write_batch, self.db, items, threshold=self.threshold)
        except asyncio.CancelledError:  # the loop is shutting down: stop waiting
            for job in batch:
                job.future.cancel()
            raise
        except Exception as exc:  # write_batch answers every job; this is a last resort
            outcomes = [exc] * len(batch)
        finally:
            self._slots.release()
        committed = sum(isinstance(outcome, Written) for outcome in outcomes)
        if self.on_batch is not None and committed:
            self.on_batch(committed)
        for job, outcome in zip(batch, outcomes, strict=True):
            # Its response is stored (so release() keeps the key) only if it committed.
            job.idem.saved = job.idem.active and isinstance(outcome, Written)
            if job.future.done():  # the request was cancelled meanwhile
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)


Item = tuple[ClaimCreate, str, Idempotency]


def write_batch(db: Database, items: list[Item], *,
                threshold: float) -> list[Written | BaseException]:
    """Write a batch in one transaction; on a batch-wide failure, each item alone."""
    try:
        with db.write_session() as session:
            outcomes = create_claims(session, [(claim_in, actor) for claim_in, actor, _ in items],
                                     threshold=threshold)
            written: list[Written | BaseException] = []
            for (_, _, idem), outcome in zip(items, outcomes, strict=True):
                if isinstance(outcome, ClaimCreated):
                    headers = headers_of(outcome)
                    idem.save(session, status=201, body=outcome, headers=headers)
                    written.append(Written(
                        outcome.__pydantic_serializer__.to_json(outcome), headers))
                else:
                    written.append(outcome)
            session.commit()
        return written
    except Exception as exc:
        if len(items) == 1:
            return [exc]
        return [write_batch(db, [item], threshold=threshold)[0] for item in items]


def headers_of(claim: ClaimCreated) -> dict[str, str]:
    return {"ETag": f'"{claim.version}"', "Location": f"/v1/claims/{claim.id}"}


class WriterProcess:
    """A worker's writer process: batches go down a pipe, their outcomes come back in order.

    If the process dies, the batches it had get 503 — each may or may not have committed,
    so the client's retry with its Idempotency-Key either replays or does it — and the
    next batch starts a new process. The process ignores SIGINT and SIGTERM: the worker
    decides when writing stops (after its in-flight requests, `stop()`), and a worker
    killed outright closes the pipe; either way the process writes what it was sent, then
    ends.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        # _lock guards the state below and is held only briefly (never while sending: a
        # batch too big for the socket's buffer waits for the process to read it, and the
        # process may itself be waiting for our reader thread, which needs this lock).
        # _send_lock keeps batches in the order of their futures.
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._process: subprocess.Popen | None = None
        # The current process's batches sent and not yet answered, oldest first: (future,
        # size). Each process has a deque of its own, so a reply from one that has been
        # replaced can never answer another's batch.
        self._pending: deque[tuple[Future, int]] = deque()
        self._reader: threading.Thread | None = None
        self._stopped = False  # after stop(), no new process is started

    def start(self) -> None:
        """Start the process and wait until it has connected (raises if it could not).

        A plain `python -c` over a socket pair, not multiprocessing's spawn: spawn would
        import the parent's main module again (the CLI: Typer, Rich, uvicorn, ~15 MB of a
        process that needs none of it) and start a resource tracker process as well.
        """
        try:
            ours, theirs = socket.socketpair()
        except OSError as exc:  # out of file descriptors, say
            raise RuntimeError(f"the writer process did not start: {exc}") from None
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", "from app.fastpath.writer import main; main()",
                 str(theirs.fileno())],
                # A session of its own: a terminal's Ctrl-C (or a signal to the worker's
                # group) is for the worker, which ends the writer when it is done.
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            ours.close()
            raise RuntimeError(f"the writer process did not start: {exc}") from None
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        try:
            conn.send(self.settings)
            if not conn.poll(STARTUP_SECONDS) or conn.recv() != "ready":
                raise RuntimeError("the writer process did not start")
        except Exception:  # it died, timed out, or the settings could not be sent
            conn.close()
            _end(process, timeout=5)
            raise RuntimeError("the writer process did not start; see its log") from None
        pending: deque[tuple[Future, int]] = deque()
        self._conn, self._process, self._pending = conn, process, pending
        self._reader = threading.Thread(target=self._receive, args=(conn, pending),
                                        name="claimledger-writer-pipe", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, items: list[Item]) -> "Future[list[Written | BaseException]]":
        """Send a batch (starting the process if need be); its outcomes arrive later."""
        future: Future = Future()
        # Pickled first: a batch that cannot be sent must not take a place in the queue.
        payload = ForkingPickler.dumps(
            [(claim_in, actor, _idem_state(idem)) for claim_in, actor, idem in items])
        with self._send_lock:
            with self._lock:
                try:
                    if self._stopped:
                        raise RuntimeError("the writer has stopped (the worker is stopping)")
                    if self._conn is None:
                        self.start()
                except RuntimeError as exc:
                    log.error("%s", exc)
                    future.set_result(_stopped(len(items)))
                    return future
                conn = self._conn
                assert conn is not None
                self._pending.append((future, len(items)))
            try:
                conn.send_bytes(payload)
            except OSError as exc:
                with self._lock:
                    if self._conn is conn:
                        self._lost(exc)  # answers this batch too: it is pending
        return future

    def _receive(self, conn: Connection, pending: deque[tuple[Future, int]]) -> None:
        """The pipe's reader thread: answer the oldest pending batch with each reply."""
        while True:
            try:
                reply = conn.recv()
                with self._lock:
                    future, size = pending.popleft()
            except Exception as exc:  # the pipe closed, or a reply no batch was waiting for
                with self._lock:
                    if self._conn is conn:  # not stop(), nor a process already replaced
                        self._lost(exc)
                    _fail(pending)
                return
            try:
                outcomes = [_rebuilt(outcome) for outcome in reply]
                if len(outcomes) != size:
                    raise ValueError(f"{len(outcomes)} outcomes for {size} claims")
            except Exception:
                log.exception("a reply from the writer process could not be read")
                outcomes = [AppError("an unexpected error occurred; it has been logged")] * size
            _answer(future, outcomes)

    def _lost(self, exc: BaseException) -> None:
        """The process is gone (the lock is held): fail what it had, forget it."""
        log.error("the writer process stopped (%s: %s); the next batch starts another",
                  type(exc).__name__, exc)
        _fail(self._pending)
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            _end(self._process, timeout=1)
        self._conn = self._process = None
        self._pending = deque()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the process to end once it has written what it has, and wait for it."""
        with self._lock:
            conn, process, pending = self._conn, self._process, self._pending
            self._conn = self._process = None  # the reader thread now ends quietly
            self._pending = deque()
            self._stopped = True
        if conn is None or process is None:
            return
        with self._send_lock, contextlib.suppress(OSError):
            conn.send(None)
        _end(process, timeout)
        if self._reader is not None:  # it answers what the process sent before it ended
            self._reader.join(5)
        conn.close()
        with self._lock:
            _fail(pending)


def _fail(pending: deque[tuple[Future, int]]) -> None:
    """Answer every batch still pending with 503 (the lock is held)."""
    while pending:
        future, size = pending.popleft()
        _answer(future, _stopped(size))


def _answer(future: Future, outcomes: list[Written | BaseException]) -> None:
    # Its request may have been cancelled meanwhile (asyncio.wrap_future cancels it).
    with contextlib.suppress(InvalidStateError):
        if not future.done():
            future.set_result(outcomes)


def _end(process: subprocess.Popen, timeout: float) -> None:
    """Wait for the process to end; kill it if it has not within `timeout`."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stopped(size: int) -> list[Written | BaseException]:
    return [Unavailable("the writer stopped while writing this claim; it may or may not have "
                        "been stored: retry (with the same Idempotency-Key, a retry is safe)",
                        headers={"Retry-After": "1"}) for _ in range(size)]


def _idem_state(idem: Idempotency) -> tuple[str, str, str, str, float] | None:
    if not idem.active:
        return None
    return (idem.api_key_id, idem.key, idem.digest, idem.token, idem.ttl_hours)  # type: ignore


def main() -> None:
    """The writer process's entry point: its socket's descriptor is argv[1]; the worker
    sends its settings first."""
    conn = Connection(int(sys.argv[1]))
    try:
        settings = conn.recv()
    except (EOFError, OSError):
        return
    _serve(settings, conn)


def _serve(settings: Settings, conn: Connection) -> None:
    """The writer process: write each batch the pipe brings until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(PROCESS_NAME)
    from app.middleware.observability import configure_logging
    configure_logging(settings.log_level)
    db = Database(settings, writer_process=True)
    settle_heap()  # as the worker does (app/main.py)
    conn.send("ready")
    stopping = False
    try:
        while not stopping:
            # Everything the worker has sent by now is written in one transaction (each
            # batch still gets its own reply): the longer the last commit took, the more
            # it takes together, and the fixed cost of a commit is paid once for all.
            batches: list[list[Any]] = []
            try:
                while not batches or (conn.poll() and sum(map(len, batches)) < MERGED_MAX):
                    batch = conn.recv()
                    if batch is None:  # the worker is stopping: write what came before
                        stopping = True
                        break
                    batches.append(batch)
            except (EOFError, OSError):
                stopping = True  # the worker died: write what it sent, then end
            items = [(claim_in, actor, _idempotency(state))
                     for batch in batches for claim_in, actor, state in batch]
            if not items:
                break
            outcomes = [_portable(outcome) for outcome in
                        write_batch(db, items, threshold=settings.similarity_threshold)]
            try:
                for batch in batches:
                    conn.send(outcomes[:len(batch)])
                    del outcomes[:len(batch)]
            except (EOFError, OSError):
                return
    finally:
        db.dispose()


def _idempotency(state: tuple[str, str, str, str, float] | None) -> Idempotency:
    if state is None:
        return Idempotency()
    api_key_id, key, digest, token, ttl = state
    idem = Idempotency(None, api_key_id, key, digest, ttl_hours=ttl)
    idem.token = token
    return idem


def _portable(outcome: Written | BaseException) -> Any:
    """An outcome that survives the pipe: errors as (class name, detail, headers, extra)."""
    if isinstance(outcome, Written):
        return outcome
    error = outcome if isinstance(outcome, AppError) else errors.database_problem(outcome)
    if error is None:
        log.error("unexpected error writing claims", exc_info=outcome)
        error = AppError("an unexpected error occurred; it has been logged")
    return (type(error).__name__, error.detail, error.headers, error.extra)


def _rebuilt(outcome: Any) -> Written | AppError:
    if isinstance(outcome, Written):
        return outcome
    name, detail, headers, extra = outcome
    error_class = getattr(errors, name, AppError)
    return error_class(detail, headers=headers, **extra)


def create_claims(
    session: Session, items: list[tuple[ClaimCreate, str]], *, threshold: float,
) -> list[ClaimCreated | AppError]:
    """Create each claim as `claims.create_claim` would, in bulk; a failing item fails alone.

    Items are taken in order: an item sees the claims of the items before it (as likely
    duplicates, and for origin + external_id conflicts), as if they had committed first.
    """
    outcomes: list[ClaimCreated | AppError | None] = [None] * len(items)
    claims = dict(enumerate(claim_in for claim_in, _ in items))
    locks.lock_claims(session, claims.values())
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
