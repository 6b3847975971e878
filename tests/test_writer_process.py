"""The writer process (app/fastpath/writer.py) and the write gate it shares with its worker
(app/db.py).

`claimledger serve` writes new claims in a process of its own; these tests drive one
directly (a real spawned process on the test's database) and through a live server.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from app.config import Settings
from app.db import Database
from app.domain.idempotency import Idempotency
from app.errors import Unavailable, Unprocessable
from app.fastpath.writer import PROCESS_NAME, WriterProcess, Written
from app.models import Claim, ClaimCreate, IdempotencyRecord, Source
from tests.live_server import live_secrets, run_live_server  # noqa: F401


def _source(db: Database) -> str:
    with db.write_session() as session:
        source = Source(name="Rochan Consulting")
        session.add(source)
        session.commit()
        return source.id


def _claim(text: str, source_id: str) -> ClaimCreate:
    return ClaimCreate.model_validate(
        {"text": text, "attributions": [{"source_id": source_id, "stance": "asserts"}]})


def _texts(db: Database) -> list[str]:
    with Session(db.engine) as session:
        return sorted(session.exec(select(Claim.text)).all())


@pytest.fixture
def writer(settings: Settings):
    process = WriterProcess(settings)
    process.start()
    yield process
    process.stop(timeout=10)


def test_gate_keeps_writers_of_two_databases_apart(settings: Settings):
    """Two Database objects on one file stand for two processes (flock is per open file).

    The second write transaction starts only after the first has ended, so what it reads
    is current when it writes: without the gate it would read, the first would commit,
    and its write would fail with SQLITE_BUSY_SNAPSHOT (no busy timeout helps).
    """
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL's write lock is an advisory lock")
    first, second = Database(settings), Database(settings)
    seen: list[list[str]] = []
    failed: list[BaseException] = []
    try:
        with first.write_session() as held:
            held.add(Source(name="BelTA"))
            held.flush()  # its transaction has begun: the gate is held
            waiter = threading.Thread(target=_read_then_write, args=(second, seen, failed))
            waiter.start()
            time.sleep(0.3)
            assert seen == [], "the second writer began before the first had ended"
            held.commit()
        waiter.join(10)
        assert failed == [] and seen == [["BelTA"]]
    finally:
        first.dispose()
        second.dispose()


def _read_then_write(db: Database, seen: list[list[str]], failed: list[BaseException]) -> None:
    try:
        with db.write_session() as session:
            seen.append(list(session.exec(select(Source.name)).all()))
            session.add(Source(name="ISW"))
            session.commit()
    except BaseException as exc:
        failed.append(exc)


def test_writer_process_writes_a_batch_and_stores_idempotent_responses(writer, db, settings):
    source_id = _source(db)
    idem = Idempotency(None, "key_1", "retry-1", "digest-1", ttl_hours=1)
    items = [(_claim("Belarus hosts Russian troops near Brest.", source_id), "ingest", idem),
             (_claim("Grain trains left Odesa on Monday.", source_id), "ingest", Idempotency())]
    outcomes = writer.submit(items).result(timeout=30)
    assert [type(o) for o in outcomes] == [Written, Written]
    assert outcomes[0].headers["ETag"] == '"1"'
    assert outcomes[0].headers["Location"].startswith("/v1/claims/clm_")
    assert b"near Brest" in outcomes[0].body
    assert _texts(db) == ["Belarus hosts Russian troops near Brest.",
                          "Grain trains left Odesa on Monday."]
    with Session(db.engine) as session:
        record = session.get(IdempotencyRecord, ("key_1", "retry-1"))
    assert record is not None and record.done and record.status_code == 201
    assert record.claim_token == idem.token


@pytest.mark.timeout(120, method="thread")  # the failure this guards against is a hang
def test_batches_bigger_than_the_pipe_all_come_back_each_to_its_own(writer, db):
    """Six 64-claim batches of ~400 KB each, sent at once: the process blocks sending
    replies while batches still wait to be sent. Nothing may hang, and every outcome must
    answer its own claim (the replies come back in order)."""
    source_id = _source(db)
    quote = "Satellite images show armour massing near the border. " * 90  # ~5 KB

    def claim(n: int) -> ClaimCreate:
        return ClaimCreate.model_validate({"text": f"Claim {n}: troops moved to Brest.",
                                           "attributions": [{"source_id": source_id,
                                                             "stance": "asserts",
                                                             "quote": quote}]})

    batches = [[(claim(b * 64 + i), "ingest", Idempotency()) for i in range(64)]
               for b in range(6)]
    with ThreadPoolExecutor(6) as pool:
        futures = list(pool.map(writer.submit, batches))
    for b, future in enumerate(futures):
        outcomes = future.result(timeout=120)
        assert all(isinstance(o, Written) for o in outcomes), outcomes[:1]
        for i, outcome in enumerate(outcomes):
            assert json.loads(outcome.body)["text"] == f"Claim {b * 64 + i}: troops moved to Brest."
    assert len(_texts(db)) == 6 * 64


def test_writer_process_errors_come_back_as_the_same_problem(writer, db):
    source_id = _source(db)
    items = [(_claim("Minsk denies any mobilisation.", "src_nope"), "ingest", Idempotency()),
             (_claim("Kyiv reports drones over Zhytomyr.", source_id), "ingest", Idempotency())]
    bad, good = writer.submit(items).result(timeout=30)
    assert isinstance(bad, Unprocessable) and "src_nope" in bad.detail
    assert isinstance(good, Written)  # one bad item fails alone
    assert _texts(db) == ["Kyiv reports drones over Zhytomyr."]


def test_a_killed_writer_process_fails_its_batch_with_503_and_is_replaced(writer, db):
    source_id = _source(db)
    first_pid = writer.pid
    assert Path(f"/proc/{first_pid}/comm").read_text().strip() == PROCESS_NAME
    os.kill(first_pid, signal.SIGSTOP)  # stopped before it can read the batch
    pending = writer.submit([(_claim("Troops massed at the border.", source_id), "ingest",
                              Idempotency())])
    os.kill(first_pid, signal.SIGKILL)
    (outcome,) = pending.result(timeout=30)
    assert isinstance(outcome, Unavailable) and outcome.headers == {"Retry-After": "1"}
    assert _texts(db) == []
    (again,) = writer.submit([(_claim("Troops massed at the border.", source_id), "ingest",
                               Idempotency())]).result(timeout=60)
    assert isinstance(again, Written)
    assert writer.pid not in (None, first_pid)
    assert _texts(db) == ["Troops massed at the border."]


def test_stop_waits_for_what_was_sent_and_answers_it(settings: Settings, db):
    source_id = _source(db)
    process = WriterProcess(settings)
    process.start()
    pending = process.submit([(_claim(f"Convoy {n} crossed at Mozyr.", source_id), "ingest",
                               Idempotency()) for n in range(32)])
    process.stop(timeout=30)  # at once: the batch is still being written
    outcomes = pending.result(timeout=1)
    assert all(isinstance(o, Written) for o in outcomes), outcomes[:1]
    assert len(_texts(db)) == 32


def test_stop_ends_the_process(settings: Settings):
    process = WriterProcess(settings)
    process.start()
    pid = process.pid
    process.stop(timeout=10)
    assert process.pid is None
    assert not _alive(pid)
    (late,) = process.submit([(_claim("Too late.", "src_x"), "ingest", Idempotency())]) \
        .result(timeout=5)
    assert isinstance(late, Unavailable) and process.pid is None  # no new process


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _writer_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            name = (stat.parent / "comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and name == PROCESS_NAME:
            found.append(int(stat.parent.name))
    return found


def _wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signal_", [signal.SIGTERM, signal.SIGKILL])
def test_a_served_worker_writes_in_its_writer_process_which_ends_with_it(
        settings: Settings, tmp_path: Path, live_secrets, signal_):  # noqa: F811
    with run_live_server(settings, tmp_path / "uvicorn.log") as server:
        assert server.process is not None
        (writer_pid,) = _writer_children(server.process.pid)
        headers = {"Authorization": f"Bearer {live_secrets['ingester']}"}
        response = httpx.post(f"{server.url}/v1/claims", headers=headers, timeout=30,
                              json={"text": "Belarus closed its border with Ukraine."})
        assert response.status_code == 201, response.text
        assert response.headers["ETag"] == '"1"'
        server.process.send_signal(signal_)
        server.process.wait(timeout=30)
        # Graceful or killed, the worker's writer process does not outlive it.
        assert _wait_until(lambda: not _alive(writer_pid)), "the writer process outlived it"


def test_the_writer_process_copies_the_log_in_the_background(settings: Settings):
    """The writer process's commits leave the write-ahead log alone (a commit that
    checkpointed took the writer a quarter of its time); its Checkpointer thread copies
    the log into the database file instead, and stops with the Database. Its connection
    keeps the writer's larger page cache; other databases keep the per-connection one."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL checkpoints on its own")
    from app.fastpath.writer import write_batch

    settings = settings.model_copy(update={"sqlite_cache_kib": 256,
                                           "sqlite_writer_cache_kib": 3072})
    db = Database(settings, writer_process=True)
    other = Database(settings)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -3072
        with other.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -256
        path = Path(db.engine.url.database)
        source_id = _source(db)
        before = path.stat().st_size
        outcomes = write_batch(db, [(_claim(f"Convoy {n} seen near Mazyr, Homel region.",
                                            source_id), "test", Idempotency())
                                    for n in range(200)], threshold=0.5)
        assert all(isinstance(o, Written) for o in outcomes)
        deadline = time.monotonic() + 10
        while path.stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.stat().st_size > before, "nothing was copied from the log"
    finally:
        db.dispose()
        other.dispose()
    assert not db._checkpointer._thread.is_alive()


def test_the_writer_process_and_the_domain_modules_load_without_fastapi():
    """Modules below api/ never import FastAPI (STYLE.md), and the writer process, which
    counts in a worker's memory (bench P6), loads only those: ~7 MB less resident
    (67.4 -> 60.4 MB after the import)."""
    code = ("import sys, app.fastpath.writer, app.domain.claims, app.domain.links, "
            "app.domain.listing, app.domain.ingest, app.domain.search, app.domain.reviews, "
            "app.domain.idempotency; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'fastapi', 'sse_starlette', 'prometheus_client', 'typer', 'rich'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]", out.stdout
