"""The live feed (`GET /v1/events/stream`) under a real server: a dashboard holds it for hours.

Every deadline the server has is set low here (body read, request, request headers,
keep-alive, statements, graceful shutdown), and the stream is held longer than all of
them: it must stay open, carry heartbeat comments, deliver an event written late, and
leave nothing in the server's log.
"""

import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import mint_role_keys
from tests.live_server import run_live_server

DEADLINE = 1  # seconds: every deadline of the server under test
HELD = 4 * DEADLINE  # the stream is held this long before the late event is written
PROBLEMS = re.compile(r"error|traceback|exception", re.IGNORECASE)


@pytest.fixture
def short_deadlines(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "body_read_timeout_seconds": DEADLINE, "request_timeout_seconds": DEADLINE,
        "header_timeout_seconds": DEADLINE, "statement_timeout_ms": DEADLINE * 1000,
        "pool_timeout": DEADLINE, "feed_heartbeat_seconds": DEADLINE,
    })


class StreamReader:
    """Reads a stream's lines on a thread of its own, each with the time it arrived."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.lines: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                self.lines.append((time.monotonic(), line))
        except BaseException as exc:  # a cut stream: httpx.RemoteProtocolError
            self.error = exc
        finally:
            self.ended.set()

    def wait_for(self, text: str, timeout: float) -> float | None:
        """When the first line containing `text` arrived, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if text in line:
                    return at
            if self.ended.is_set():
                return None
            time.sleep(0.05)
        return None


def test_stream_events_outlives_every_deadline(short_deadlines: Settings, tmp_path: Path):
    log_path = tmp_path / "uvicorn.log"
    secrets = mint_role_keys(short_deadlines, "feed")
    reader_auth = {"Authorization": f"Bearer {secrets['reader']}"}
    with run_live_server(short_deadlines, log_path, keep_alive_seconds=DEADLINE,
                         graceful_seconds=DEADLINE) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http, \
            http.stream("GET", "/v1/events/stream", headers=reader_auth,
                        params={"poll_seconds": 0.2}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        opened = time.monotonic()
        feed = StreamReader(stream)
        time.sleep(HELD)
        assert not feed.ended.is_set(), f"the stream ended after {HELD} s: {feed.error!r}"
        created = http.post("/v1/claims", json={"text": "A claim written while a feed waits."},
                            headers={"Authorization": f"Bearer {secrets['ingester']}"})
        assert created.status_code == 201, created.text
        claim_id = created.json()["id"]
        arrived = feed.wait_for(claim_id, timeout=5)
        assert arrived is not None, \
            f"the late event never arrived (stream error: {feed.error!r}): {feed.lines[-5:]}"
        assert arrived - opened > HELD
        pings = [at for at, line in feed.lines if line.startswith(":")]
        assert pings, f"no heartbeat comment in {HELD} s: {feed.lines}"
        assert feed.error is None and not feed.ended.is_set()
    log = log_path.read_text(errors="replace")
    assert not PROBLEMS.search(log), log


def test_stream_events_ends_cleanly_on_graceful_stop(short_deadlines: Settings, tmp_path: Path):
    """SIGTERM ends an open stream well before the graceful-shutdown deadline, and cleanly."""
    log_path = tmp_path / "uvicorn.log"
    secrets = mint_role_keys(short_deadlines, "feed")
    with run_live_server(short_deadlines, log_path, keep_alive_seconds=DEADLINE,
                         graceful_seconds=30) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http, \
            http.stream("GET", "/v1/events/stream",
                        headers={"Authorization": f"Bearer {secrets['reader']}"}) as stream:
        assert stream.status_code == 200
        feed = StreamReader(stream)
        assert feed.wait_for("id:", timeout=5) is not None, f"no event: {feed.lines}"
        process = server.process
        assert process is not None
        stopping = time.monotonic()
        process.terminate()
        assert feed.ended.wait(10), "the stream stayed open after SIGTERM"
        process.wait(10)
        assert time.monotonic() - stopping < 10
        assert feed.error is None, f"the stream was cut, not ended: {feed.error!r}"
    log = log_path.read_text(errors="replace")
    assert not PROBLEMS.search(log), log
