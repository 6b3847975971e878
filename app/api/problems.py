"""Errors as RFC 9457 problem+json responses: the one place that renders them, installed
by main.py for the domain errors (app/errors.py), validation, routing and database
errors, and anything unexpected."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.errors import PROBLEM_JSON, AppError, database_problem

log = logging.getLogger("claimledger")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(
        jsonable_encoder(body), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _matching_routes(request: Request, path: str) -> list[Any]:
    scope = {**request.scope, "path": path}
    # iter_route_contexts: the included routers' routes too, with their prefixes.
    return [context for context in iter_route_contexts(request.app.routes)
            if context.methods and context.matches(scope)[0] is not Match.NONE]


def _methods(routes: list[Any]) -> list[str]:
    """Every method of these routes, HEAD wherever GET is (http_semantics answers it)."""
    methods = {method for route in routes for method in route.methods}
    if "GET" in methods:
        methods.add("HEAD")
    rank = {method: n for n, method in enumerate(_METHOD_ORDER)}
    return sorted(methods, key=lambda m: (rank.get(m, len(rank)), m))


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        out.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    return out


class _BodyLimitAsProblem:
    """Re-render Starlette's plain-text 413 (sent by its body-size middleware, outside every
    exception handler) as problem+json."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_problem(message: Any) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = dict(message.get("headers", []))
                if not headers.get(b"content-type", b"").startswith(PROBLEM_JSON.encode()):
                    replaced = True
                    response = problem(413, "Content Too Large",
                                       "the request body is larger than this endpoint accepts",
                                       instance=scope.get("path"))
                    await send({"type": "http.response.start", "status": 413,
                                "headers": response.raw_headers})
                    await send({"type": "http.response.body", "body": response.body})
                    return
            if replaced:
                return  # the plain-text body that went with the replaced start
            await send(message)

        await self.app(scope, receive, send_problem)


def install_error_handlers(app: FastAPI) -> None:
    # The outermost layer, so that even the framework's own body-size refusal is a problem.
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: _BodyLimitAsProblem(build())  # type: ignore[method-assign]

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, request=request,
                       headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "Bad Request", "the request body is not valid JSON",
                           request=request, errors=errors)
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(422, "Unprocessable Content", f"invalid request: {where}",
                       request=request, errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 413:
            detail = "the request body is larger than this endpoint accepts"
        elif exc.status_code == 404:
            detail = f"no route matches {request.url.path}"
            # No redirect (main.py): a Location built from the request names the client's Host.
            bare = request.url.path.rstrip("/")
            if bare and bare != request.url.path and _matching_routes(request, bare):
                detail += f"; without the trailing slash: {bare}"
        elif exc.status_code == 405:
            # Starlette names only the methods of the first route with this path.
            allow = ", ".join(_methods(_matching_routes(request, request.url.path)))
            headers = {**(headers or {}), "Allow": allow}
            detail = f"{request.method} is not a method of {request.url.path}; it has {allow}"
        title = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                 408: "Request Timeout", 413: "Content Too Large"}.get(exc.status_code, "Error")
        return problem(exc.status_code, title, detail, request=request, headers=headers)

    @app.exception_handler(PoolTimeout)
    async def pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("database pool exhausted on %s", request.url.path)
        return await app_error(request, database_problem(exc))  # type: ignore[arg-type]

    @app.exception_handler(DataError)
    async def data_refused(request: Request, exc: DataError) -> JSONResponse:
        log.warning("database refused a value on %s: %s", request.url.path,
                    exc.orig.__class__.__name__)
        return await app_error(request, database_problem(exc))  # type: ignore[arg-type]

    @app.exception_handler(OperationalError)
    async def db_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database error on %s: %s", request.url.path, exc.orig.__class__.__name__)
        return await app_error(request, database_problem(exc))  # type: ignore[arg-type]

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error",
                       "an unexpected error occurred; it has been logged", request=request)
