"""The OpenAPI document as the server behaves: what FastAPI generates, corrected where its
declarations cannot say it (If-Match's 412/428, cursor and key patterns, no NUL in request
strings, 415 where a body is read, links for stateful clients, the configured batch and
page sizes), every error under problem+json."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from app.deps import optional_if_match, page_size, required_if_match
from app.errors import PROBLEM_JSON

# Cursors (the `cursor` query parameter, and the feed's Last-Event-ID) are unpadded base64url,
# as pagination.encode_cursor writes them. Said here because their declarations (CursorDep in
# deps.py, events.py) are shared; anything else is refused with 400.
CURSOR_PARAMETERS = ("cursor", "Last-Event-ID")
CURSOR_PATTERN = "^[A-Za-z0-9_-]*$"


# idempotency.check_key: printable ASCII (HTTP strips the spaces around a header value).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"


def _cursor_schema(declared: dict[str, Any]) -> dict[str, Any]:
    """The declared string schema (its maxLength, title, description), with the pattern."""
    string = next((s for s in declared.get("anyOf", []) if s.get("type") == "string"), {})
    rest = {k: v for k, v in declared.items() if k != "anyOf"}
    return {**rest, **string, "type": "string", "pattern": CURSOR_PATTERN}


def _depends_on(dependant: Any, call: Any) -> bool:
    return any(dep.call is call or _depends_on(dep, call) for dep in dependant.dependencies)


def _if_match_routes(app: FastAPI) -> dict[tuple[str, str], bool]:
    """(path, method) of each operation that reads If-Match -> whether it requires it."""
    found = {}
    # iter_route_contexts: the routes as get_openapi sees them, with their routers' prefixes.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        required = _depends_on(route.dependant, required_if_match)
        if required or _depends_on(route.dependant, optional_if_match):
            for method in route.methods:
                found[(context.path_format, method.lower())] = required
    return found


def _paged_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(path, method) of each operation whose `limit` is the page size (deps.page_size)."""
    return {(context.path_format, method.lower())
            for context in iter_route_contexts(app.routes)
            if isinstance(context.original_route, APIRoute)
            and _depends_on(context.original_route.dependant, page_size)
            for method in context.original_route.methods}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without its `null` branch: a query or header value is text, never
    null (leaving it out is how a client says none)."""
    branches = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(branches) != 1 or len(branches) == len(schema.get("anyOf", [])):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**rest, **branches[0]}


# Keys are left unlinked: schemathesis' stateful phase starts its sequences only at the
# operations it ranks reliable when there are any, and it would rank POST /v1/keys the only one
# (it reads `external_id` and `source_id` as ids of resources nothing creates), so sequences
# would never start at claims or sources. tests/test_schemathesis.py checks that they do.
UNLINKED = ("/v1/keys",)
# What exists only after a later step, not once its parent is created: a claim's ClaimReview
# is there once a checker publishes it, so a link from the new claim would promise a 404.
NOT_CREATED_WITH_PARENT = (("/v1/claims/{claim_id}/claimreview", "get"),)


def _add_links(paths: dict[str, Any], if_match: dict[tuple[str, str], bool]) -> None:
    """OpenAPI links from each 201 to the operations on what it created: `POST /v1/claims`
    -> every operation on `/v1/claims/{claim_id}…`, the new id from the body's `id`, the
    parent's ids from the request path, and If-Match from the response's ETag."""
    for path, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201")
        if created is None or path in UNLINKED:
            continue
        for target_path, targets in paths.items():
            head, _, rest = target_path.removeprefix(path + "/").partition("}")
            if not target_path.startswith(path + "/{") or "{" in rest:
                continue
            for method, target in targets.items():
                if (target_path, method) in NOT_CREATED_WITH_PARENT:
                    continue
                parameters = {head.removeprefix("{"): "$response.body#/id"}
                parameters.update({p["name"]: f"$request.path.{p['name']}"
                                   for p in target.get("parameters", [])
                                   if p["in"] == "path" and "{" + p["name"] + "}" in path})
                if (target_path, method) in if_match and "ETag" in created.get("headers", {}):
                    parameters["header.If-Match"] = "$response.header.ETag"
                created.setdefault("links", {})[target["operationId"]] = {
                    "operationId": target["operationId"], "parameters": parameters}


# A NUL cannot be stored in or compared with PostgreSQL text (errors.database_problem: 400),
# so no string a request sends may hold one: said of every request string with no pattern...
NO_NUL_PATTERN = "^[^\\x00]*$"
# ... but for the search, which takes any text (app/domain/search.py keeps only the words).
SEARCH_PARAMETER = "q"


def _forbid_nul(node: Any, components: dict[str, Any], seen: set[str]) -> None:
    """Give every string schema under `node` without a pattern (or enum, const, format) the
    NO_NUL_PATTERN, following $refs into the components once."""
    if isinstance(node, list):
        for item in node:
            _forbid_nul(item, components, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref", "")
    if ref.startswith("#/components/schemas/") and ref not in seen:
        seen.add(ref)
        _forbid_nul(components.get(ref.rsplit("/", 1)[1]), components, seen)
    if node.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(node):
        node["pattern"] = NO_NUL_PATTERN
    for key, value in node.items():
        if key not in ("example", "examples", "default", "const", "enum"):
            _forbid_nul(value, components, seen)


BATCH_PATH = "/v1/ingest"


def _limit_batches(paths: dict[str, Any], max_items: int) -> None:
    """A JSON batch holds at most the app's max_batch_items (a setting, so not declarable)."""
    body = paths.get(BATCH_PATH, {}).get("post", {}).get("requestBody", {})
    media = body.get("content", {}).get("application/json")
    if media is not None:
        media["schema"] = {**media["schema"], "maxItems": max_items}


UNSUPPORTED_MEDIA_TYPE = {
    "description": "The body is not of a media type this operation reads (Accept names them)",
    "headers": {"Accept": {"description": "The media types this operation reads",
                           "schema": {"type": "string"}, "required": True}},
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


# /v1alpha1 (Google's API) answers errors in Google's shape (app/middleware/google_errors.py),
# and a request it refuses as invalid with 400, never 422.
GOOGLE_PREFIX = "/v1alpha1/"
GOOGLE_UNSUPPORTED_MEDIA_TYPE = {
    **UNSUPPORTED_MEDIA_TYPE,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GoogleError"}}},
}


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The schema, with every error response filed under application/problem+json.

    If-Match is marked required where the route needs it: the parameter itself has a
    default so that a request without it gets 428 (PreconditionRequired), not 422. Only
    operations that read If-Match list 412, and only those that require it list 428.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    if_match = _if_match_routes(app)
    paged, settings = _paged_routes(app), app.state.settings
    for path_format, path in schema.get("paths", {}).items():
        for method, operation in path.items():
            required = if_match.get((path_format, method))
            responses = operation.get("responses", {})
            google = path_format.startswith(GOOGLE_PREFIX)
            if google:
                responses.pop("422", None)
            if required is None:
                responses.pop("412", None)
            if not required:
                responses.pop("428", None)
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _not_null(parameter["schema"])
                if parameter["name"] in CURSOR_PARAMETERS:
                    parameter["schema"] = _cursor_schema(parameter["schema"])
                elif parameter["name"] == "Idempotency-Key":
                    parameter["schema"] = {**parameter["schema"], "type": "string",
                                           "pattern": IDEMPOTENCY_KEY_PATTERN}
                    parameter["schema"].pop("anyOf", None)
                elif parameter["in"] == "header" and parameter["name"] == "If-Match":
                    parameter["required"] = bool(required)
                elif parameter["name"] == "limit" and (path_format, method) in paged:
                    parameter["schema"] = {**parameter["schema"],
                                           "maximum": settings.max_page_size}
            if "requestBody" in operation:  # http_semantics refuses other media types
                responses["415"] = GOOGLE_UNSUPPORTED_MEDIA_TYPE if google \
                    else UNSUPPORTED_MEDIA_TYPE
            for status, response in responses.items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content and not google:
                    content[PROBLEM_JSON] = content.pop("application/json")
    _add_links(schema.get("paths", {}), if_match)
    _limit_batches(schema.get("paths", {}), app.state.settings.max_batch_items)
    components, seen = schema.get("components", {}).get("schemas", {}), set()
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            _forbid_nul([p["schema"] for p in operation.get("parameters", [])
                         if p["name"] != SEARCH_PARAMETER], components, seen)
            _forbid_nul(operation.get("requestBody"), components, seen)
    schemas = schema.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
