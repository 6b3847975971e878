"""Admission: at most `limit` requests are worked on at once, first come, first served."""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AdmissionMiddleware:
    """Queue whole requests at the door instead of every thread-pool hop inside.

    A request passes through the thread pool several times (key lookup, role check, session,
    route, teardown). With more requests inside than threads, each hop queues behind every
    other request's hop, so under 256 connections whole rounds of requests finish together
    after seconds without a single response (measured in tests/test_reliability.py). Here a
    request takes its turn once its body has arrived (a slow client holds no turn) and
    gives it back as its response starts. Long-lived streams and liveness are exempt.
    """

    def __init__(self, app: ASGIApp, *, limit: int,
                 exempt: tuple[str, ...] = ("/healthz", "/v1/events/stream")):
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self._turns: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._turns is None or self._loop is not loop:  # a new loop (tests): new queue
            self._turns, self._loop = asyncio.Semaphore(self.limit), loop
        return self._turns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        turns = self._semaphore()
        held = False

        async def take() -> None:
            nonlocal held
            if not held:
                await turns.acquire()
                held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                turns.release()

        async def receive_then_take() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                await take()
            return message

        async def send_and_give_back(message: Message) -> None:
            if message["type"] == "http.response.start":
                give_back()
            await send(message)

        headers = dict(scope.get("headers", []))
        if headers.get(b"content-length", b"0") in (b"0", b"") \
                and b"transfer-encoding" not in headers:
            await take()  # no body to wait for
        try:
            await self.app(scope, receive_then_take, send_and_give_back)
        finally:
            give_back()
