"""/metrics under `claimledger serve --workers 2`: one scrape of the port reports every worker.

The server runs as `python -m app.cli serve` from this tree, with TMPDIR pointing into the
test's own directory so that the metrics directory `serve` makes for the run can be found,
read (each worker's share) and checked for removal at exit.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.fastpath.writer import PROCESS_NAME
from tests.conftest import mint_role_keys
from tests.live_server import ROOT, _die_with_parent, free_port, settings_env, stop_process

START_TIMEOUT = 60.0  # two workers importing the app on 2 busy cores
STOP_TIMEOUT = 30.0
BURST = 40  # requests sent at once, each on a new connection, so both workers take some
MAX_REQUESTS = 2_000
MIN_REQUESTS = 200
SENDERS = 8
COUNTED = {"method": "GET", "route": "/v1/claims/{claim_id}", "status": "404"}


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    tmp: Path
    log: Path
    reader: dict[str, str]

    def workers(self) -> set[int]:
        """The worker processes (uvicorn spawns them) the server has now; not a writer
        process (with one worker, the server's own child)."""
        out = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid and fields[0] != "Z" and \
                        b"spawn_main" in (stat.parent / "cmdline").read_bytes() and \
                        (stat.parent / "comm").read_text().strip() != PROCESS_NAME:
                    out.add(int(stat.parent.name))
        return out

    def metrics_dirs(self) -> list[Path]:
        return sorted(self.tmp.glob("claimledger-metrics-*"))

    def scrape(self) -> str:
        """One /metrics on a new connection (so scrapes land on either worker)."""
        response = httpx.get(f"{self.url}/metrics", timeout=30,
                             headers={**self.reader, "Connection": "close"})
        assert response.status_code == 200, response.text
        return response.text

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def _serve(settings: Settings, tmp_path: Path, workers: int) -> Iterator[Served]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = settings_env(settings) | {"TMPDIR": str(tmp), "CLAIMLEDGER_LOG_LEVEL": "warning"}
    reader = {"Authorization": f"Bearer {mint_role_keys(settings, 'metrics')['reader']}"}
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--no-migrate"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
    served = Served(process, f"http://127.0.0.1:{port}", tmp, log, reader)
    try:
        _wait(lambda: process.poll() is None and _healthy(served.url)
              and len(served.workers()) == (workers if workers > 1 else 0),
              f"{workers} worker(s) serving", served)
        yield served
    finally:
        stop_process(process, STOP_TIMEOUT)
        print(f"--- serve log (tail) ---\n{served.log_tail()}")  # shown when the test fails


@pytest.fixture
def two_workers(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    yield from _serve(settings, tmp_path, workers=2)


@pytest.fixture
def one_worker(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    yield from _serve(settings, tmp_path, workers=1)


def _healthy(url: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    return False


def _wait(condition, what: str, served: Served, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"not {what} after {timeout:.0f} s; serve log:\n{served.log_tail()}")


def _value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return sample.value
    return None


def _counted(text: str) -> float | None:
    return _value(text, "claimledger_http_requests_total", COUNTED)


def _per_worker(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of the requests the test sends, from its counter file."""
    out = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for metric in MultiProcessCollector.merge([str(path)]):
            for sample in metric.samples:
                if sample.name == "claimledger_http_requests_total" and \
                        sample.labels == COUNTED:
                    out[pid] = sample.value
    return out


def _settle(served: Served, metrics_dir: Path, sent: int) -> None:
    """Wait until the workers have counted all sent requests: a request is counted just
    after its answer has gone, so the client can read the answer first."""
    _wait(lambda: sum(_per_worker(metrics_dir).values()) >= sent,
          f"{sent} requests counted in the workers' files", served, timeout=10)
    assert sum(_per_worker(metrics_dir).values()) == sent, _per_worker(metrics_dir)


def _live_gauge_pids(metrics_dir: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("gauge_live*_*.db")}


def _send(served: Served, n: int) -> None:
    """n requests at once, each on its own connection (no keep-alive): 404s for claims
    nobody made, counted under one route and status and nothing else."""

    def one(i: int) -> int:
        return httpx.get(f"{served.url}/v1/claims/clm_missing{i}", timeout=30,
                         headers={**served.reader, "Connection": "close"}).status_code

    with ThreadPoolExecutor(SENDERS) as pool:
        statuses = list(pool.map(one, range(n)))
    assert statuses == [404] * n


def _gone(pid: int) -> bool:
    """Exited and reaped (uvicorn's supervisor looks every 0.5 s): until then the scrape's
    liveness check still sees the process."""
    return not Path(f"/proc/{pid}").exists()


def test_metrics_two_workers_one_scrape_counts_every_worker(two_workers: Served, settings):
    served = two_workers
    dirs = served.metrics_dirs()
    assert len(dirs) == 1, dirs
    metrics_dir = dirs[0]
    assert metrics_dir.stat().st_mode & 0o077 == 0, "the metrics directory is private"

    # Until both workers have answered some (the kernel hands each new connection to
    # whichever worker is waiting), and at least MIN_REQUESTS in all.
    sent = 0
    while sent < MIN_REQUESTS or len(_per_worker(metrics_dir)) < 2:
        assert sent < MAX_REQUESTS, f"one worker took every request: {_per_worker(metrics_dir)}"
        _send(served, BURST)
        sent += BURST
    _settle(served, metrics_dir, sent)
    shares = _per_worker(metrics_dir)
    assert set(shares) == served.workers() and all(shares.values()), shares

    # Every scrape, whichever worker answers it, reports the whole server.
    for _ in range(8):
        assert _counted(served.scrape()) == sent

    # A killed worker (no shutdown at all): its requests stay counted; its live gauges
    # (requests in flight, its pool) leave the sums once uvicorn has replaced it.
    killed, kept = sorted(shares)
    os.kill(killed, signal.SIGKILL)
    _wait(lambda: _gone(killed), "the killed worker gone", served)
    for _ in range(4):
        text = served.scrape()
        assert _counted(text) == sent
    assert killed not in _live_gauge_pids(metrics_dir)
    _wait(lambda: len(served.workers() - {killed}) == 2, "a replacement worker", served)
    replacement = (served.workers() - {killed, kept}).pop()

    def settled() -> bool:
        text = served.scrape()
        assert _counted(text) == sent
        return _live_gauge_pids(metrics_dir) == {kept, replacement} and \
            _value(text, "claimledger_db_pool_size") == 2 * settings.threads

    _wait(settled, "the pool gauges of the two live workers alone", served)
    assert _value(served.scrape(), "claimledger_http_requests_in_flight") == 1  # this scrape

    # A worker that exits (SIGTERM: graceful shutdown) takes itself out of the live gauges
    # without waiting for a scrape, and its counts stay too.
    os.kill(kept, signal.SIGTERM)
    _wait(lambda: _gone(kept), "the stopped worker gone", served)
    assert kept not in _live_gauge_pids(metrics_dir)
    _wait(lambda: _healthy(served.url), "serving after a worker exit", served)
    for _ in range(4):
        assert _counted(served.scrape()) == sent
    more = 2 * BURST
    _send(served, more)
    _settle(served, metrics_dir, sent + more)
    assert _counted(served.scrape()) == sent + more

    # Stopping the server removes the directory.
    served.process.terminate()
    assert served.process.wait(timeout=STOP_TIMEOUT) == 0, served.log_tail()
    assert not metrics_dir.exists()
    assert served.metrics_dirs() == []


def test_metrics_one_worker_keeps_them_in_memory(one_worker: Served, settings):
    served = one_worker
    _send(served, 10)
    text = served.scrape()
    assert _counted(text) == 10
    assert _value(text, "claimledger_db_pool_size") == settings.threads
    assert served.metrics_dirs() == []  # no directory, no files: as before multiprocess mode
