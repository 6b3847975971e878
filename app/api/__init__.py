"""One router per URL resource. `ERRORS` documents the problem responses routes can give."""

from typing import Any

from app.models import Problem


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for these error statuses; main.py files them under problem+json."""
    descriptions = {
        400: "Malformed request (bad JSON, bad cursor or If-Match)",
        401: "No valid API key",
        403: "The key's role may not do this",
        404: "No such resource",
        408: "The request body arrived too slowly",
        409: "Conflicts with the current state",
        410: "Was published and has been withdrawn",
        412: "If-Match is stale",
        413: "Request body too large",
        422: "Invalid request",
        428: "If-Match is required",
        429: "Rate limit exceeded",
        503: "Database busy or unavailable",
    }
    return {s: {"model": Problem, "description": descriptions[s]} for s in statuses}


# The response headers a route sets, for its `responses=` (ETag: the version If-Match names).
ETAG = {"ETag": {"description": "The version of the resource, for If-Match",
                 "schema": {"type": "string", "pattern": r'^"[0-9]{1,18}"$'}}}
LOCATION = {"Location": {"description": "The new resource's path",
                         "schema": {"type": "string"}}}


def with_headers(status: int, *headers: dict[str, Any], required: bool = True
                 ) -> dict[int | str, dict[str, Any]]:
    """An OpenAPI response entry for `status` declaring these response headers."""
    merged = {name: {**spec, "required": required} for h in headers for name, spec in h.items()}
    return {status: {"headers": merged}}


READ_ERRORS = errors(400, 401, 403, 404, 422, 429, 503)
WRITE_ERRORS = errors(400, 401, 403, 404, 408, 409, 412, 413, 422, 428, 429, 503)
