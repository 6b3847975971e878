"""Stopping a server mid-write: in-flight writes answer 503 and write nothing, the write
gate is never left taken, and a server exits in bounded time whoever holds the gate."""

import asyncio
import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from app.config import Settings
from app.db import WRITE_LOCK_ID, Database
from app.models import Claim, Instance
from tests.conftest import mint_role_keys
from tests.live_server import run_live_server

GRACEFUL = 1  # seconds: uvicorn's graceful period in the live-server tests
SHUTDOWN = 1.0  # shutdown_timeout_seconds and cancel_grace_seconds there
# SIGTERM to exit: the graceful period, each bounded shutdown step, the last-resort exit.
EXIT_BOUND = GRACEFUL + 6 * SHUTDOWN + 5


@contextlib.contextmanager
def write_gate_held(settings: Settings) -> Iterator[None]:
    """Hold the server's write gate from outside, as a stuck writer would: on SQLite the
    gate file's `flock`; on PostgreSQL the lock every write transaction takes."""
    if settings.is_sqlite:
        path = settings.database_url.removeprefix("sqlite:///") + "-writegate"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
        return
    engine = sa.create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"SELECT pg_advisory_lock({WRITE_LOCK_ID})"))
            try:
                yield
            finally:
                conn.execute(sa.text(f"SELECT pg_advisory_unlock({WRITE_LOCK_ID})"))
    finally:
        engine.dispose()


def claims_in(settings: Settings) -> list[str]:
    database = Database(settings)
    try:
        with database.session() as session:
            return list(session.exec(select(Claim.text)))
    finally:
        database.dispose()


def test_ingest_during_shutdown_answers_503_and_server_exits(settings: Settings,
                                                             tmp_path: Path):
    """SIGTERM while a batch waits on the write gate: after the graceful period the batch is
    answered 503 with Retry-After (not uvicorn's 500), nothing is written, and the server
    exits in bounded time although the gate is never given back."""
    settings = settings.model_copy(update={
        "shutdown_timeout_seconds": SHUTDOWN, "cancel_grace_seconds": SHUTDOWN,
        "instance_heartbeat_seconds": 0.5, "instance_timeout_seconds": 2.0})
    secrets = mint_role_keys(settings, "stop")
    log_path = tmp_path / "uvicorn.log"
    items = [{"text": f"Claim {i} of a batch cut short by a shutdown."} for i in range(50)]
    outcome: dict[str, httpx.Response | BaseException] = {}

    with run_live_server(settings, log_path, graceful_seconds=GRACEFUL) as server:
        process = server.process
        assert process is not None

        def send_batch() -> None:
            try:
                outcome["response"] = httpx.post(
                    f"{server.url}/v1/ingest", json=items, timeout=60,
                    headers={"Authorization": f"Bearer {secrets['ingester']}"})
            except BaseException as exc:
                outcome["response"] = exc

        with write_gate_held(settings):
            sender = threading.Thread(target=send_batch)
            sender.start()
            time.sleep(1.0)  # the batch is in, waiting for the gate
            assert "response" not in outcome, outcome
            stopping = time.monotonic()
            process.terminate()
            sender.join(EXIT_BOUND)
            try:
                process.wait(EXIT_BOUND)
            except Exception:
                pytest.fail(f"the server did not exit within {EXIT_BOUND} s of SIGTERM "
                            f"with the write gate held:\n{server.log_tail()}")
            took = time.monotonic() - stopping
    response = outcome.get("response")
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 503, (response.status_code, response.text,
                                         server.log_tail())
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert "server is stopping" in response.json()["detail"]
    assert took < EXIT_BOUND
    assert claims_in(settings) == []
    log = log_path.read_text(errors="replace")
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log


def test_run_writing_cancelled_interrupts_the_write(db: Database):
    """A cancelled write's thread is stopped mid-statement and waited for: it commits
    nothing, and the session's teardown then finds the gate its own to give back."""
    finished = threading.Event()

    def work(session) -> None:
        try:
            session.add(Instance(id="written-then-cancelled",
                                 last_seen_at=sa.func.current_timestamp()))
            session.flush()
            long_query = "SELECT pg_sleep(30)" if not db.is_sqlite else (
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                "WHERE x < 10000000000) SELECT count(*) FROM n")
            session.execute(sa.text(long_query))
            session.commit()
        finally:
            finished.set()

    async def cancel_midway() -> float:
        with db.write_session() as session:
            task = asyncio.ensure_future(db.run_writing(session, lambda: work(session)))
            await asyncio.sleep(0.5)
            cancelled_at = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - cancelled_at

    took = asyncio.run(cancel_midway())
    assert finished.is_set() and took < 3, took  # statement_timeout would be 15 s
    with db.session() as session:
        assert session.get(Instance, "written-then-cancelled") is None
    with db.write_session(gate_timeout=2) as session:  # the gate is free
        session.execute(sa.text("SELECT 1"))


def test_gate_taken_after_its_request_ended_is_given_back(settings: Settings):
    """A worker thread that takes the gate after its request's teardown ran (its awaiting
    task was cancelled while the thread queued for the gate) gives it straight back."""
    if not settings.is_sqlite:
        pytest.skip("the write gate is SQLite's; PostgreSQL takes a transaction lock "
                    "that ends with the transaction")
    db = Database(settings)
    try:
        _late_writer_gives_the_gate_back(db)
    finally:
        db.engine.dispose()  # not dispose(): closing a gate left taken would wait for it


def _late_writer_gives_the_gate_back(db: Database) -> None:
    gate = db._write_gate
    assert gate is not None
    gate.acquire()  # another writer holds it
    manager = db.write_session()
    session = manager.__enter__()
    errors: list[BaseException] = []

    def late_writer() -> None:
        try:
            session.execute(sa.text("SELECT 1"))  # begins: queues for the gate
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=late_writer)
    worker.start()
    time.sleep(0.3)
    with contextlib.suppress(Exception):
        manager.__exit__(None, None, None)  # the request's teardown, as on cancellation
    gate.release()
    worker.join(5)
    assert not worker.is_alive()
    assert gate._lock.acquire(timeout=2), "the gate was left taken"
    gate._lock.release()
