"""Errors under /v1alpha1 in Google's shape (`{"error": {"code", "message", "status"}}`)
rather than problem+json, so Google's client libraries read them as they read Google's.

It wraps the whole app (main.py), so every refusal is converted, whichever layer made it:
routing, validation (422 becomes Google's 400 INVALID_ARGUMENT), keys, limits, deadlines."""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON

PREFIX = "/v1alpha1/"

# HTTP status -> Google's canonical error code name (google.rpc.Code).
CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
         404: "NOT_FOUND", 405: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED",
         409: "ALREADY_EXISTS", 410: "NOT_FOUND", 412: "FAILED_PRECONDITION",
         413: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT",
         428: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
         503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def google_error(status: int, message: str) -> tuple[int, bytes]:
    """The status Google would answer with, and its error body."""
    code = 400 if status == 422 else status
    body = {"error": {"code": code, "message": message, "status": CODES.get(status, "UNKNOWN")}}
    return code, json.dumps(body, ensure_ascii=False).encode()


class GoogleErrorsMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def convert(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if message["status"] >= 400 and headers.get(b"content-type", b"").startswith(
                        PROBLEM_JSON.encode()):
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await _send_converted(send, start, b"".join(chunks),
                                      head=scope["method"] == "HEAD")
                return
            await send(message)

        await self.app(scope, receive, convert)


async def _send_converted(send: Send, start: Message, problem: bytes, *, head: bool) -> None:
    try:
        detail = json.loads(problem).get("detail") or "the request failed"
    except (ValueError, AttributeError):
        detail = "the request failed"
    status, body = google_error(start["status"], detail)
    headers = [(k, v) for k, v in start.get("headers", [])
               if k not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json; charset=UTF-8"),
                (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
