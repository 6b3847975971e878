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
from starlette.middleware.cors import CORSMiddleware

from app.api import (
    claims,
    events,
    export,
    factcheck,
    health,
    ingest,
    keys,
    origins,
    public,
    publishing,
    sources,
    stats,
    webhooks,
)
from app.api.openapi import openapi_schema
from app.api.problems import install_error_handlers
from app.config import Settings, get_settings
from app.db import Database
from app.deps import KeyCache
from app.desk import routes as desk
from app.domain.deliveries import Dispatcher
from app.domain.idempotency import Heartbeat, Replay
from app.domain.stats import StatsCache
from app.fastpath.read_cache import ClaimCache
from app.fastpath.writer import GroupCommit, WriterProcess
from app.middleware.concurrency import AdmissionMiddleware
from app.middleware.deadlines import TimeLimitMiddleware
from app.middleware.google_errors import GoogleErrorsMiddleware
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
        process = None
        if database is None and settings.writer_process:
            process = await anyio.to_thread.run_sync(_start_writer, settings)
        # The shared objects the routes use, built here and nowhere else.
        app.state.claim_cache = ClaimCache(app.state.db, size=settings.claim_cache_entries,
                                           counter=app.state.metrics.claim_cache)
        app.state.group_commit = GroupCommit(
            app.state.db, threshold=settings.similarity_threshold,
            max_batch=settings.write_batch_max, on_batch=app.state.metrics.write_batch.observe,
            process=process)
        delivering = asyncio.create_task(Dispatcher(app.state.db, settings).run()) \
            if settings.webhook_worker else None
        if database is None and settings.heap_settling:  # a server, not an app in a test
            settle_heap()
        yield
        if delivering is not None:  # sends under way give their leases back
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(delivering, timeout=settings.shutdown_timeout_seconds)
        limit = settings.shutdown_timeout_seconds
        if served:  # each step below is bounded; threads stuck elsewhere are not
            _exit_if_still_running(after=4 * limit)
        if process is not None:  # after in-flight requests
            await anyio.to_thread.run_sync(process.stop, limit)
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        await anyio.to_thread.run_sync(heartbeat.stop, limit)
        app.state.metrics.close()
        app.state.claim_cache.close()
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
    # The live feeds (the API's and the desk's) are long-lived: no turn, no time limit.
    streams = ("/v1/events/stream", desk.STREAM_PATH)
    app.add_middleware(AdmissionMiddleware, limit=settings.threads,
                       exempt=("/healthz", *streams))
    app.add_middleware(TimeLimitMiddleware, body_seconds=settings.body_read_timeout_seconds,
                       request_seconds=settings.request_timeout_seconds, exempt=streams)
    if database is not None:
        app.state.db = database
    install_error_handlers(app)
    # Outermost of all: /v1alpha1 answers every error in Google's shape, not problem+json.
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: GoogleErrorsMiddleware(build())  # type: ignore[method-assign]
    install_observability(app, app.state.metrics)  # after: outside the error handlers
    app.add_exception_handler(Replay, _replay)
    for module in (health, claims, publishing, export, sources, ingest, events, stats, keys,
                   origins, webhooks, public, factcheck):
        # A batch's body may be larger than any other request's.
        limit = settings.max_ingest_body_bytes if module is ingest else None
        app.include_router(module.router, max_body_size=limit)
    install_cors(app, settings)  # outside the rest: preflights and error answers carry it
    desk.install(app)  # the dashboard at /, after the API's routes
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


# What browsers may send and read: the API's methods and request headers, and the response
# headers clients act on.
CORS_METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "Last-Event-ID",
                "X-Request-ID"]
CORS_EXPOSED = ["ETag", "Location", "Retry-After", "X-Request-ID", "Idempotent-Replayed"]


def install_cors(app: FastAPI, settings: Settings) -> None:
    """CORS for CLAIMLEDGER_CORS_ORIGINS; none configured, none answered."""
    origins = settings.cors_origin_list
    if not origins:
        return
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=CORS_METHODS,
                       allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED,
                       allow_credentials="*" not in origins, max_age=600)


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
