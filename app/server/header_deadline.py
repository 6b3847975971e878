"""uvicorn's HTTP protocol with a deadline for request headers (slowloris).

uvicorn times out idle keep-alive connections and the app cuts off slow bodies
(app/middleware/deadlines.py), but nothing limits how long a client may take to send its
request line and headers: the app only sees a request once they are complete. A client dribbling a
header line every few seconds held its connection forever. Here each request (and a new
connection before its first byte) must finish its headers within
`Settings.header_timeout_seconds` (`CLAIMLEDGER_HEADER_TIMEOUT_SECONDS`), or gets a 408 and
the connection is closed.

Used by `claimledger serve` (`http=` of uvicorn) and the live-server tests
(`--http app.server.header_deadline:HeaderTimeoutProtocol`).
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import get_settings

_BODY = b"the request headers did not arrive in time"
_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
             b"content-length: " + str(len(_BODY)).encode() + b"\r\nconnection: close\r\n\r\n"
             + _BODY)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn builds the protocol from its import path (so that it reaches every worker):
        # the deadline comes from the process's settings, as the app's own do; 0 turns it off.
        self.timeout = get_settings().header_timeout_seconds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is cut off too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def timeout_keep_alive_handler(self) -> None:
        self._disarm()
        super().timeout_keep_alive_handler()

    def _arm(self) -> None:
        if self._header_timer is None and self.timeout > 0:
            self._header_timer = self.loop.call_later(self.timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            # No request in progress whose response is owed: answer 408 and close.
            self.transport.write(_RESPONSE)
        self.transport.close()
