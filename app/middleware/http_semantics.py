"""HTTP semantics the framework leaves to the application (RFC 9110): HEAD answered wherever
GET is, and a request body of a media type the route does not read refused with 415."""

from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import problem

JSON = "application/json"
NDJSON = "application/x-ndjson"
# ingest.parse_batch reads JSON Lines as NDJSON too.
_ALSO_ACCEPTED = {NDJSON: ("application/jsonl",)}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    """application/json and every structured `+json` type (RFC 6839) are read as JSON; their
    parameters are ignored (JSON is UTF-8, RFC 8259)."""
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


class HttpSemanticsMiddleware:
    """HEAD is GET without its body; a body must come as a media type its route reads."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._accepts: dict[int, tuple[str, ...] | None] = {}  # id(route) -> media types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "HEAD":
                await self._head(scope, receive, send)
                return
            if scope["method"] in _BODY_METHODS:
                refusal = self._unsupported_media_type(scope)
                if refusal is not None:
                    await refusal(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The GET, answered with its status and headers (Content-Length included) only. A
        # stream (the event feed) never ends by itself: once the head is sent, the route is
        # told the client has gone.
        get = {**scope, "method": "GET"}
        answered = False

        async def receive_until_answered() -> Message:
            if answered:
                return {"type": "http.disconnect"}
            return await receive()

        async def send_head(message: Message) -> None:
            nonlocal answered
            if answered or message["type"] != "http.response.start":
                return
            await send(message)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            answered = True

        try:
            await self.app(get, receive_until_answered, send_head)
        finally:
            if "route" in get:  # for the metrics and the access log, outside this layer
                scope["route"] = get["route"]

    def _unsupported_media_type(self, scope: Scope) -> Any:
        content_type = has_body = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                has_body = True
        if not has_body or (content_type is not None and is_json(media_type(content_type))):
            return None
        accepted = self._accepted(scope)
        if accepted is None:
            return None
        sent = media_type(content_type or "")
        if (is_json(sent) and JSON in accepted) or sent in accepted:
            return None
        told = f"Content-Type: {content_type}" if content_type else "no Content-Type"
        return problem(
            415, "Unsupported Media Type",
            f"send the body as {' or '.join(accepted)} (the Content-Type header); this request "
            f"has {told[:200]}", headers={"Accept": ", ".join(accepted)}, instance=scope["path"])

    def _accepted(self, scope: Scope) -> tuple[str, ...] | None:
        """The media types the matching route reads its body as; None if it reads none."""
        for context in iter_route_contexts(scope["app"].routes):
            route = context.original_route
            if isinstance(route, APIRoute) and context.matches(scope)[0] is Match.FULL:
                key = id(route)
                if key not in self._accepts:
                    self._accepts[key] = _accepted_by(route)
                return self._accepts[key]
        return None


def _accepted_by(route: APIRoute) -> tuple[str, ...] | None:
    declared = (route.openapi_extra or {}).get("requestBody", {}).get("content")
    if declared:
        return tuple(t for media in declared for t in (media, *_ALSO_ACCEPTED.get(media, ())))
    return (JSON,) if route.body_field is not None else None
