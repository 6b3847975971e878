"""The application factory: settings in, a ready FastAPI app out. Nothing connects at import."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from app.admission import AdmissionMiddleware
from app.api import claims, events, health, ingest, keys, sources, stats
from app.config import Settings, get_settings
from app.db import Database
from app.deps import KeyCache
from app.errors import PROBLEM_JSON, install_error_handlers
from app.idempotency import Heartbeat, Replay
from app.limits import TimeLimitMiddleware
from app.observability import Metrics, ObservabilityMiddleware
from app.ratelimit import RateLimiter
from app.stats import StatsCache

DESCRIPTION = """A ledger of factual claims: who said what, where, who disputes it, and what
fact-checkers concluded, with the full history of every change.

Authenticate with `Authorization: Bearer <key>`. Every error is `application/problem+json`."""


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The pool is sized to this many threads (db.make_engine): never more threads
        # than connections, or requests wait on each other's connections forever.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        app.state.db = database or Database(settings)
        app.state.metrics.watch_pool(app.state.db.engine)
        app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute,
                                             shared=not app.state.db.is_sqlite)
        # Registered before the first request, so every claim this process makes names it.
        heartbeat = app.state.heartbeat = Heartbeat(
            app.state.db, interval=settings.instance_heartbeat_seconds,
            timeout=settings.instance_timeout_seconds)
        await anyio.to_thread.run_sync(heartbeat.beat)
        beating = asyncio.create_task(heartbeat.run())
        yield
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        await anyio.to_thread.run_sync(heartbeat.stop)
        app.state.metrics.close()
        cache = getattr(app.state, "claim_cache", None)
        if cache is not None:
            cache.close()
        if database is None:
            app.state.db.dispose()

    app = FastAPI(
        title="Claimledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(ttl=settings.key_cache_seconds)
    app.state.stats_cache = StatsCache()
    app.state.metrics = Metrics()
    app.add_middleware(AdmissionMiddleware, limit=settings.threads)
    app.add_middleware(TimeLimitMiddleware, body_seconds=settings.body_read_timeout_seconds,
                       request_seconds=settings.request_timeout_seconds)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    if database is not None:
        app.state.db = database
    install_error_handlers(app)
    app.add_exception_handler(Replay, _replay)
    for module in (health, claims, sources, ingest, events, stats, keys):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _replay(_request: Request, replay: Replay) -> Response:
    headers = {**replay.headers, "Idempotent-Replayed": "true"}
    if replay.body is None:
        return Response(status_code=replay.status, headers=headers)
    return JSONResponse(replay.body, status_code=replay.status, headers=headers)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with every error response filed under application/problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    schemas = schema.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
