"""Engine and sessions: SQLite pragmas, pool sizing, and the single-writer rule."""

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from app.config import Settings

log = logging.getLogger("claimledger")
T = TypeVar("T")


class Interrupted(Exception):
    """A write session's work was stopped from another thread (its request was cancelled)."""


class GateTimeout(TimeoutError):
    """The write gate stayed taken past the caller's deadline."""


def make_engine(settings: Settings, *, writer_process: bool = False) -> Engine:
    """An engine whose pool matches the worker threads, so requests never starve it.

    `writer_process` (SQLite; app/fastpath/writer.py): commits never copy the write-ahead log (a
    `Checkpointer` thread does), and the one connection that writes keeps a larger page
    cache (`sqlite_writer_cache_kib`)."""
    url = settings.database_url
    kwargs: dict[str, Any] = {
        "pool_size": settings.threads,
        "max_overflow": 8,
        "pool_timeout": settings.pool_timeout,
        "pool_pre_ping": not url.startswith("sqlite"),
    }
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
            raise ValueError("use a file for SQLite: every connection must see the same data")
    else:
        kwargs["connect_args"] = {
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
            "connect_timeout": settings.connect_timeout_seconds,
        }
    engine = create_engine(url, **kwargs)
    _refuse_interrupted(engine)
    if engine.dialect.name == "sqlite":
        cache_kib = settings.sqlite_writer_cache_kib if writer_process \
            else settings.sqlite_cache_kib
        _configure_sqlite(engine, cache_kib=cache_kib,
                          timeout_seconds=settings.statement_timeout_ms / 1000,
                          autocheckpoint=not writer_process)
    return engine


# SQLite's write-ahead log grows past its usual size while readers keep a checkpoint
# from reaching its end (a burst of writes under continuous reads); once the log starts
# over, the file is cut back to this instead of keeping its largest size for good.
WAL_SIZE_LIMIT = 64 * 1024 * 1024

# SQLite calls the progress handler every this many virtual-machine steps (a few
# milliseconds of work): statements shorter than that never pay for the check.
_PROGRESS_STEPS = 1_000_000
_NO_DEADLINE = float("inf")


def _refuse_interrupted(engine: Engine) -> None:
    # Database.interrupt marks the connection: every later statement of the interrupted
    # session fails at once, until the connection goes back to the pool.
    @event.listens_for(engine, "before_cursor_execute")
    def _refuse(conn: Any, *_args: Any) -> None:
        if conn.info.get("interrupted"):
            raise Interrupted("the request was cancelled; its work was stopped")

    @event.listens_for(engine, "checkin")
    def _clear(_dbapi_connection: Any, record: Any) -> None:
        record.info.pop("interrupted", None)


def _configure_sqlite(engine: Engine, *, cache_kib: int, timeout_seconds: float,
                      autocheckpoint: bool = True) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        if not autocheckpoint:  # a Checkpointer thread does it instead
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()
        # A statement timeout, as PostgreSQL's statement_timeout: a statement still running
        # (or being fetched) this long after it started is interrupted, and the request
        # gets a 503 instead of holding a thread and a connection for minutes.
        deadline = record.info["statement_deadline"] = [_NO_DEADLINE]
        dbapi_connection.set_progress_handler(
            lambda: time.monotonic() > deadline[0], _PROGRESS_STEPS)

    @event.listens_for(engine, "before_cursor_execute")
    def _start_clock(conn: Any, *_args: Any) -> None:
        conn.connection.info["statement_deadline"][0] = time.monotonic() + timeout_seconds

    # Ending a transaction is never interrupted, however long its last statement ran.
    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _stop_clock(conn: Any) -> None:
        deadline = conn.connection.info.get("statement_deadline")
        if deadline is not None:
            deadline[0] = _NO_DEADLINE


class Database:
    """The engine, its session factory and the write gate, built once per app."""

    def __init__(self, settings: Settings, engine: Engine | None = None, *,
                 writer_process: bool = False):
        """`writer_process`: the database of a writer process (app/fastpath/writer.py; see
        make_engine), with its `Checkpointer` thread on SQLite."""
        self.settings = settings
        self.engine = engine or make_engine(settings, writer_process=writer_process)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._checkpointer = Checkpointer(self.engine.url.database or "") \
            if self.is_sqlite and writer_process and engine is None else None
        self.session_factory = sessionmaker(
            self.engine, class_=Session, expire_on_commit=False, autoflush=False
        )
        # SQLite has one writer at a time; queueing writers on this gate instead of in
        # busy_timeout sleeps cuts the tail latency (bench P1; bench/RESULTS.md, "Write
        # gate") and avoids
        # SQLITE_BUSY_SNAPSHOT when a transaction that read turns into a writer. A write
        # session takes the gate when its transaction begins, not when it is opened, so
        # a request can finish short write steps (idempotency) before its main one.
        self._write_gate = WriteGate(self.engine.url.database or "") if self.is_sqlite \
            else None
        event.listen(self.session_factory, "after_begin", _take_gate)
        event.listen(self.session_factory, "after_transaction_end", _release_gate)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.session_factory() as session:
            yield session

    @contextmanager
    def write_session(self, *, gate_timeout: float | None = None) -> Iterator[Session]:
        """A session for one unit of work; the caller commits. Serialised on SQLite.

        `gate_timeout`: wait at most this long for the write gate (GateTimeout), as paths
        that must end in bounded time do (shutdown); None waits as long as it takes."""
        session = self.session_factory()
        session.info["gate"] = self._write_gate
        session.info["write_session"] = True
        session.info["gate_timeout"] = gate_timeout
        try:
            yield session
        finally:
            with _GATE_STATE:  # a thread that takes the gate from now on gives it back
                session.info["finished"] = True
            try:
                if session.info.get("interrupted") and not self.is_sqlite:
                    # Discarded, not pooled: a cancel request arriving late must not hit
                    # the connection's next user (SQLite's interrupt is synchronous).
                    session.invalidate()
                else:
                    session.rollback()
                session.close()
            except sa_exc.InvalidRequestError:  # IllegalStateChangeError, "concurrent operations"
                # A thread of a cancelled request is still beginning a transaction in it
                # (queued for the gate): it gives the gate back and fails (_take_gate).
                log.warning("a cancelled request's write was still waiting for the write "
                            "gate; it stops when it gets it")
            finally:
                _release_gate(session, None)

    def interrupt(self, session: Session) -> None:
        """From another thread: fail the write session's running statement and every later
        one, so the thread using it gives it up (its work rolls back)."""
        with _GATE_STATE:
            session.info["interrupted"] = True
            connection = session.info.get("connection")
            if connection is None:  # no transaction yet: _take_gate refuses to begin one
                return
            try:
                connection.info["interrupted"] = True
                dbapi_connection = connection.connection.dbapi_connection
            except Exception:  # closed meanwhile: nothing left to stop
                return
        with contextlib.suppress(Exception):  # it may have finished meanwhile
            if self.is_sqlite:
                dbapi_connection.interrupt()
            else:
                dbapi_connection.cancel()

    async def run_writing(self, session: Session, work: Callable[[], T]) -> T:
        """`work()`, which uses the write `session`, in a worker thread.

        If the awaiting task is cancelled (the request deadline, a server stopping), the
        session's work is interrupted and the thread waited for (at most
        `cancel_grace_seconds`) before the cancellation goes on. Cancelling the wait alone
        left the thread running while the caller's teardown rolled the session back and
        gave the write gate away under it; the thread's next statement began a new
        transaction, took the gate again and, failing, never gave it back (or, finishing,
        committed the rest of a batch whose start had been rolled back)."""
        task = asyncio.ensure_future(anyio.to_thread.run_sync(work))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.interrupt(session)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.cancel_grace_seconds
            while not task.done() and loop.time() < deadline:
                # A second cancellation (the loop closing) waits too: the wait is bounded.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task}, timeout=deadline - loop.time())
            task.add_done_callback(_retrieve)  # its error is the cancellation's doing
            if not task.done():
                log.warning("a cancelled write did not stop within %g s",
                            self.settings.cancel_grace_seconds)
            raise

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        if self._write_gate is not None:
            self._write_gate.close()


class Checkpointer:
    """Copies SQLite's write-ahead log into the database every `interval` seconds, on a
    thread and a connection of its own (PASSIVE: it never waits for, nor blocks, readers
    or the writer).

    By default the commit that takes the log past 1,000 pages does it, inside the commit,
    copying the same hot index pages (a claim's band keys land all over claim_band)
    once per one or two commits. Copied every half second instead, a page dirtied by ten
    commits is copied once, and the copying overlaps the next commits (bench P1;
    bench/RESULTS.md, "Checkpoints off the commit path").
    """

    def __init__(self, database_path: str, interval: float = 0.5):
        self.path, self.interval = database_path, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claimledger-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = None
        while not self._stop.wait(self.interval):
            try:
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=1, check_same_thread=False)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # busy, or the file is gone: try again later
                log.warning("checkpoint failed: %s", exc)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class WriteGate:
    """SQLite's one writer at a time, among this process's threads (a lock) and among
    processes (`flock` on a file beside the database): the worker and its writer process
    (app/fastpath/writer.py) both write."""

    def __init__(self, database_path: str):
        self._lock = threading.Lock()
        # A file of its own: SQLite's own (POSIX) locks on the database file are dropped
        # when any descriptor of that file closes in the process.
        self.path = f"{database_path}-writegate"
        self._fd = -1  # opened at first use (again after close())

    def acquire(self, timeout: float | None = None) -> None:
        """Take the gate; after `timeout` seconds (None: never) raise GateTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise GateTimeout(f"the write gate stayed taken for {timeout:g} s")
        try:
            if self._fd < 0:
                try:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                except PermissionError:  # another user's file (the CLI, say): flock reads
                    self._fd = os.open(self.path, os.O_RDONLY)
            if deadline is None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            else:  # flock has no timeout: poll (only paths that must end in time do)
                while True:
                    try:
                        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise GateTimeout("another process held the write gate for "
                                              f"{timeout:g} s") from None
                        time.sleep(0.01)
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def close(self, timeout: float = 1.0) -> None:
        # A thread stuck holding or awaiting the gate must not stop the app from closing.
        if not self._lock.acquire(timeout=timeout):
            log.warning("the write gate is still taken; closing without it")
            return
        try:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        finally:
            self._lock.release()

    def __del__(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)


# The PostgreSQL write gate; locks.lock_event_feed takes the same lock (hold_write_lock).
WRITE_LOCK_ID = 72_620_001


# Guards a write session's gate and interruption state, which a cancelled request's
# teardown (the event loop's thread) and the worker thread still using it both touch.
_GATE_STATE = threading.Lock()


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


def _take_gate(session: Session, _transaction: Any, connection: Any) -> None:
    if session.info.get("write_session"):
        with _GATE_STATE:
            if session.info.get("finished") or session.info.get("interrupted"):
                raise Interrupted("the request ended before its write began")
            session.info["connection"] = connection  # for Database.interrupt
    gate = session.info.get("gate")
    if gate is not None and not session.info.get("gate_held"):
        gate.acquire(session.info.get("gate_timeout"))
        with _GATE_STATE:
            # Its request may have ended while this thread waited for the gate (its
            # teardown has run): give the gate straight back, and write nothing.
            abandoned = session.info.get("finished") or session.info.get("interrupted")
            if not abandoned:
                session.info["gate_held"] = True
        if abandoned:
            gate.release()
            raise Interrupted("the request ended before its write began")
    elif session.info.get("write_session") and connection.dialect.name == "postgresql":
        # PostgreSQL write transactions run one at a time too: links, merges and batch
        # updates lock several claim rows, and taking them in request order deadlocked
        # (tests/test_concurrency.py). Held until commit; reads are never blocked.
        _lock_for_writing(session, connection)


def hold_write_lock(session: Session) -> None:
    """Hold PostgreSQL's write lock until the session's transaction ends (a write session
    holds it from its first statement). The event feed's ordering lock is this lock
    (locks.lock_event_feed); taken once a transaction, however often asked."""
    _lock_for_writing(session, session.connection())


_WRITE_LOCK_HELD = "write_lock_held"  # this module's own session.info key


def _lock_for_writing(session: Session, connection: Any) -> None:
    if not session.info.get(_WRITE_LOCK_HELD):
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_ID})")
        session.info[_WRITE_LOCK_HELD] = True


def _release_gate(session: Session, transaction: Any) -> None:
    if transaction is not None and transaction.parent is not None:
        return  # a savepoint ended; the transaction goes on
    # The write lock (hold_write_lock) ended with the transaction, however it ended
    # (close() rolls back without after_rollback): a session used again takes it again.
    session.info.pop(_WRITE_LOCK_HELD, None)
    with _GATE_STATE:
        session.info.pop("connection", None)
        held = session.info.pop("gate_held", False)
    if held:
        session.info["gate"].release()


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
