"""Request ids, JSON logs and Prometheus metrics, as one pure ASGI middleware."""

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("claimledger.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed as `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    for name in ("claimledger", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


# `claimledger serve --workers N` (N > 1) sets this to a fresh directory of its own.
SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
POOL_GAUGES = ("checked_out", "size", "overflow")
# How stale another worker's pool gauges may be in a scrape (the answering worker's are live).
POOL_REFRESH_SECONDS = 1.0


def shared_metrics_dir() -> str | None:
    """The directory every worker's metrics live in when serving with several, else None."""
    # prometheus-client picks file-backed values once, when it is first imported, from the
    # environment; only then do the files hold this process's numbers.
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(SHARED_DIR_ENV) or None


class Metrics:
    """The app's Prometheus metrics: a registry per app, or files all workers' scrapes sum."""

    def __init__(self) -> None:
        self.shared_dir = shared_metrics_dir()
        self.registry = CollectorRegistry()
        # Shared: the scrape reads every worker's files, so the metrics themselves are
        # registered nowhere (they would be exported twice, this worker's share again).
        own = None if self.shared_dir else self.registry
        if self.shared_dir:
            multiprocess.MultiProcessCollector(self.registry, path=self.shared_dir)
        self.requests = Counter("claimledger_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=own)
        self.latency = Histogram(
            "claimledger_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"], registry=own,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        # Summed over the workers alive now: a dead worker's requests are no longer in flight.
        self.in_flight = Gauge("claimledger_http_requests_in_flight", "Requests being served",
                               registry=own, multiprocess_mode="livesum")
        self.ingested = Counter("claimledger_ingest_items_total", "Ingested items by result",
                                ["result"], registry=own)
        self.write_batch = Histogram(
            "claimledger_claim_write_batch_size", "Claims committed together (group commit)",
            registry=own, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.claim_cache = Counter(
            "claimledger_claim_cache_total", "Claims (GET /v1/claims/{id}, list and search pages) "
            "served from a rendered copy (hit) or rendered anew (miss)", ["result"], registry=own)
        self.rate_limited = Counter("claimledger_rate_limited_total",
                                    "Requests refused by the rate limit", registry=own)
        self._pools: list[Any] = []
        # Shared: a custom collector would only ever report the answering worker's pool, so
        # each worker writes its pool's figures into live-summed gauges instead.
        self._pool_gauges = {
            name: Gauge(f"claimledger_db_pool_{name}", _pool_help(name), registry=None,
                        multiprocess_mode="livesum")
            for name in POOL_GAUGES} if self.shared_dir else {}
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def watch_pool(self, engine: Any) -> None:
        pool = engine.pool
        self._pools.append(pool)
        if self.shared_dir:
            self._refresh_pools()
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_pools_until_closed,
                                                   name="pool-metrics", daemon=True)
                self._refresher.start()
            return

        class PoolCollector:
            def collect(self) -> Any:
                for name, value in _pool_figures(pool).items():
                    family = GaugeMetricFamily(f"claimledger_db_pool_{name}", _pool_help(name))
                    family.add_metric([], value)
                    yield family

        self.registry.register(PoolCollector())  # type: ignore[arg-type]

    def render(self) -> bytes:
        if self.shared_dir:
            self._refresh_pools()
            _forget_dead_workers(self.shared_dir)
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop; with several workers, leave the live gauges (the counts stay in the sums)."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
        if self.shared_dir:
            _mark_dead(os.getpid(), self.shared_dir)

    def _refresh_pools(self) -> None:
        totals = dict.fromkeys(POOL_GAUGES, 0)
        for pool in self._pools:
            for name, value in _pool_figures(pool).items():
                totals[name] += value
        for name, value in totals.items():
            self._pool_gauges[name].set(value)

    def _refresh_pools_until_closed(self) -> None:
        while not self._stop.wait(POOL_REFRESH_SECONDS):
            self._refresh_pools()


def _pool_figures(pool: Any) -> dict[str, int]:
    return {"checked_out": pool.checkedout(), "size": pool.size(), "overflow": pool.overflow()}


def _pool_help(name: str) -> str:
    return f"Database pool: {name.replace('_', ' ')}"


_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def _forget_dead_workers(path: str) -> None:
    """mark_process_dead for workers that ended without saying so (killed, crashed).

    uvicorn's supervisor has no hook for a worker's exit (gunicorn's child_exit), so the
    scrape does it: a live gauge file whose process is gone is dropped from the sums.
    """
    pids = {int(match.group(1)) for name in os.listdir(path)
            if (match := _LIVE_GAUGE_FILE.fullmatch(name))}
    for pid in pids - {os.getpid()}:
        if not _alive(pid):
            _mark_dead(pid, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except (ProcessLookupError, PermissionError):  # gone, or its pid now another user's
        return False
    return True


def _mark_dead(pid: int, path: str) -> None:
    # Two workers scraping at once may both remove a dead worker's files.
    with contextlib.suppress(FileNotFoundError):
        multiprocess.mark_process_dead(pid, path)


CLIENT_CLOSED_REQUEST = 499


class ObservabilityMiddleware:
    """Gives each request an id (X-Request-ID), times it, counts it, logs it as JSON."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = _header(scope, b"x-request-id")
        # A client's id is kept only when short and plain: it is echoed and logged.
        request_id = sent if sent and _PLAIN_ID.fullmatch(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()
        started = gone = False  # gone: the client hung up before an answer started

        async def watched_receive() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect" and not started:
                gone = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", []).append(
                    (b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, watched_receive, send_with_id)
        finally:
            if gone:
                # Whatever the app answered went nowhere; count it as nginx does, not as
                # a 400 (the body "could not be parsed") or a 5xx.
                status = CLIENT_CLOSED_REQUEST
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if log.isEnabledFor(logging.INFO) and route not in ("/healthz", "/metrics"):
                key = scope.get("state", {}).get("api_key")
                log.info("request", extra={"fields": {
                    "request_id": request_id, "method": method, "path": scope["path"],
                    "route": route, "status": status, "ms": round(elapsed * 1000, 2),
                    "key_id": getattr(key, "id", None),
                }})


_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def install_observability(app: Any, metrics: Metrics) -> None:
    """The outermost layer, outside even the handler of unexpected errors: every response
    (a 500 too, and those of the other middlewares) carries its X-Request-ID and is counted."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: ObservabilityMiddleware(build(), metrics)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
