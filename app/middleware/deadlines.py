"""Time limits per request: slow request bodies are cut off, long requests answered 503."""

import asyncio
import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON


class TimeLimitMiddleware:
    """A client must keep its body coming (slowloris) and a request must finish in time.

    Streaming routes (Server-Sent Events, the exports) are exempt from the total limit.
    """

    def __init__(self, app: ASGIApp, *, body_seconds: float, request_seconds: float,
                 exempt: tuple[str, ...] = ("/v1/events/stream", "/v1/export",
                                            "/v1/claims.csv")):
        self.app = app
        self.body_seconds, self.request_seconds = body_seconds, request_seconds
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A request without a body (a GET, the live feed) has nothing to time: after its
        # one empty message, receive() only waits for the client to leave, for hours.
        body_done = not _has_body(scope)
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                # Not asyncio.wait_for: a caller cancelled while waiting (Starlette's
                # is_disconnected polls so) could lose the message its inner task took.
                async with asyncio.timeout(self.body_seconds):
                    message = await receive()
            except TimeoutError:
                # Connection: close, or the client could go on dribbling into a kept-alive socket.
                raise HTTPException(408, "the request body stopped arriving",
                                    headers={"Connection": "close"}) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        if scope["path"].startswith(self.exempt):
            await self.app(scope, timed_receive, tracking_send)
            return
        try:
            # In this task (asyncio.wait_for ran the app in a task of its own per request).
            async with asyncio.timeout(self.request_seconds):
                await self.app(scope, timed_receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            await _unavailable(send, scope, keep_alive=body_done, detail=(
                f"the request took longer than {self.request_seconds:g} s; retry"))
        except asyncio.CancelledError:
            # Only uvicorn cancels a request: the server is stopping and its graceful
            # period is over. The request's work has been stopped (its writes rolled
            # back): answer as the deadline does, instead of uvicorn's bare 500.
            if started:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await _unavailable(send, scope, keep_alive=False, detail=(
                "the server is stopping and stopped this request before it finished; retry "
                "(with the same Idempotency-Key, a retry is safe)"))


async def _unavailable(send: Send, scope: Scope, *, keep_alive: bool, detail: str) -> None:
    body = json.dumps({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                       "detail": detail, "instance": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", PROBLEM_JSON.encode()), (b"retry-after", b"1"),
        (b"content-length", str(len(body)).encode()),
        *([] if keep_alive else [(b"connection", b"close")])]})
    await send({"type": "http.response.body", "body": body})


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers", []))
    return b"transfer-encoding" in headers \
        or headers.get(b"content-length", b"0").strip() not in (b"0", b"")
