"""The real service under uvicorn in a subprocess, for tests that need real sockets and threads.

`live_server` starts `uvicorn app.server.asgi:app` on a free 127.0.0.1 port against the test's own
database (the `settings` fixture), waits for /healthz and stops it afterwards. Every wait is
bounded, and the child is tied to this process so an interrupted run leaves no server behind.
"""

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import mint_role_keys
from tests.factories import bearer

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """The test's settings as CLAIMLEDGER_* variables, so the child reads exactly these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMLEDGER_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"CLAIMLEDGER_{name.upper()}"] = value if isinstance(value, str) \
                else json.dumps(value)
    return env


# Looked up here, not in the child: between fork and exec only this call may run.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the (main) test thread dies, even by SIGKILL."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LiveServer:
    """One uvicorn process serving the app; `url` is its base URL once started."""

    def __init__(self, settings: Settings, log_path: Path, *,
                 keep_alive_seconds: int = 5, graceful_seconds: int = 5):
        """`keep_alive_seconds`, `graceful_seconds`: uvicorn's --timeout-keep-alive and
        --timeout-graceful-shutdown (its own deadlines; the app's are in `settings`)."""
        self.settings = settings
        self.log_path = log_path
        self.keep_alive_seconds, self.graceful_seconds = keep_alive_seconds, graceful_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, attempts: int = 3) -> "LiveServer":
        for _ in range(attempts):
            port = free_port()
            if self._start_on(port):
                return self
        raise RuntimeError(f"uvicorn did not start after {attempts} attempts:\n{self.log_tail()}")

    def _start_on(self, port: int) -> bool:
        command = [
            sys.executable, "-m", "uvicorn", "app.server.asgi:app", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--log-level", "warning",
            "--timeout-graceful-shutdown", str(self.graceful_seconds),
            "--timeout-keep-alive", str(self.keep_alive_seconds),
            "--http", "app.server.header_deadline:HeaderTimeoutProtocol",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=settings_env(self.settings), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False  # most likely the port was taken in between; try another
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        return True
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"uvicorn gave no healthy /healthz in {START_TIMEOUT}s:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, a bounded wait for the graceful shutdown, then SIGKILL."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, a bounded wait for the graceful shutdown, then SIGKILL."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextlib.contextmanager
def run_live_server(settings: Settings, log_path: Path, **options: int
                    ) -> Iterator[LiveServer]:
    """A started LiveServer, stopped afterwards; `options` as LiveServer takes them."""
    server = LiveServer(settings, log_path, **options)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """The real service on a free port, on this test's fresh database."""
    with run_live_server(settings, tmp_path / "uvicorn.log") as server:
        yield server
        died = server.process is not None and server.process.poll() is not None
    log = server.log_tail()
    if log.strip():
        print(f"--- uvicorn log (tail) ---\n{log}")  # shown when the test fails
    if died:
        pytest.fail("the server died during the test; its log is above")


@pytest.fixture
def live_secrets(settings: Settings) -> dict[str, str]:
    """One key per role in the database the live server uses: role name -> secret."""
    return mint_role_keys(settings, "live")


@pytest.fixture
def live_auth(live_secrets: dict[str, str]):
    """live_auth("checker") -> the Authorization header for a key with that role."""

    def header(role: str = "admin") -> dict[str, str]:
        return bearer(live_secrets[role])

    return header
