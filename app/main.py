"""The application factory: settings in, a ready FastAPI app out. Nothing connects at import."""

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from app.api import claims, events, export, health, ingest, keys, sources, stats
from app.api.openapi import openapi_schema
from app.api.problems import install_error_handlers
from app.config import Settings, get_settings
from app.db import Database
from app.deps import KeyCache
from app.domain.idempotency import Heartbeat, Replay
from app.domain.stats import StatsCache
from app.fastpath.writer import WriterProcess
from app.middleware.concurrency import AdmissionMiddleware
from app.middleware.deadlines import TimeLimitMiddleware
from app.middleware.http_semantics import HttpSemanticsMiddleware
from app.middleware.observability import Metrics, install_observability
from app.middleware.rate_limit import RateLimiter
from app.server.heap import settle_heap

log = logging.getLogger("claimledger")

DESCRIPTION = """A ledger of factual claims: who said what, where, who disputes it, and what
fact-checkers concluded, with the full history of every change.

Authenticate with `Authorization: Bearer <key>`. Every error is `application/problem+json`."""

DOCS_ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's files, served by the app itself


def create_app(settings: Settings | None = None, *, database: Database | None = None,
               served: bool = False) -> FastAPI:
    """`served`: this app is the process's own (app/server/asgi.py), so its shutdown may end the
    process as a last resort; an app built in a test or a tool never does."""
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
        if database is None and settings.writer_process:
            app.state.writer_process = await anyio.to_thread.run_sync(_start_writer, settings)
        if database is None:  # a server of its own, not an app built in a test
            settle_heap()
        yield
        limit = settings.shutdown_timeout_seconds
        if served:  # each step below is bounded; threads stuck elsewhere are not
            _exit_if_still_running(after=4 * limit)
        if getattr(app.state, "writer_process", None) is not None:  # after in-flight requests
            await anyio.to_thread.run_sync(app.state.writer_process.stop, limit)
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        await anyio.to_thread.run_sync(heartbeat.stop, limit)
        app.state.metrics.close()
        cache = getattr(app.state, "claim_cache", None)
        if cache is not None:
            cache.close()
        if database is None:
            app.state.db.dispose()

    # /docs (Swagger UI) and /redoc load their scripts and styles from this server (the
    # fastapi-offline package ships them), so they work without internet.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
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
    app.add_middleware(HttpSemanticsMiddleware)
    app.router.redirect_slashes = False  # never to a client-supplied Host; 404 says the way
    app.add_middleware(AdmissionMiddleware, limit=settings.threads)
    app.add_middleware(TimeLimitMiddleware, body_seconds=settings.body_read_timeout_seconds,
                       request_seconds=settings.request_timeout_seconds)
    if database is not None:
        app.state.db = database
    install_error_handlers(app)
    install_observability(app, app.state.metrics)  # after: outside the error handlers
    app.add_exception_handler(Replay, _replay)
    for module in (health, claims, export, sources, ingest, events, stats, keys):
        app.include_router(module.router)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


def _exit_if_still_running(*, after: float) -> None:
    """End the process `after` seconds from now if it is still running: the last resort
    should a shutdown step or a worker thread (Python waits for them at exit) stay blocked,
    on the write gate a stuck process holds, say."""

    def exit_now() -> None:
        log.error("the server was still running %g s after it stopped; threads still "
                  "busy: %s; exiting without them", after,
                  ", ".join(t.name for t in threading.enumerate() if not t.daemon) or "none")
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(after, exit_now)
    timer.daemon = True  # it never keeps the process alive itself
    timer.start()


def _start_writer(settings: Settings) -> WriterProcess | None:
    process = WriterProcess(settings)
    try:
        process.start()
    except RuntimeError as exc:
        log.error("%s: claims are written in a thread instead", exc)
        return None
    return process


async def _replay(_request: Request, replay: Replay) -> Response:
    headers = {**replay.headers, "Idempotent-Replayed": "true"}
    if replay.body is None:
        return Response(status_code=replay.status, headers=headers)
    return JSONResponse(replay.body, status_code=replay.status, headers=headers)
