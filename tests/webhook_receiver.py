"""A webhook receiver for tests: a local HTTP server recording what it is sent.

Each path behaves as its first segment says: `/ok` answers 204, `/500` answers 500, `/301`
redirects to `/ok`, `/hang` answers after 30 s, `/close` closes the connection unanswered,
`/gate` waits while `gate` is cleared and answers 204 once it is set.
"""

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verify(self, secret: str) -> Any:
        """The payload, verified with the Standard Webhooks library (raises if forged)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = self.path.strip("/").split("/")[0]
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                if kind == "close":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "hang":
                    receiver.stopping.wait(30)
                if kind == "gate":
                    while not receiver.gate.wait(0.05) and not receiver.stopping.is_set():
                        pass
                status = {"500": 500, "301": 301}.get(kind, 204)
                self.send_response(status)
                if status == 301:
                    self.send_header("Location", "/ok/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        """At least `count` requests to `path`, waiting up to `timeout` s for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path} got {len(self.on(path))} requests, not {count}, "
                             f"in {timeout} s")


def wait_until(check: Any, timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll `check()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not hold within {timeout} s")
