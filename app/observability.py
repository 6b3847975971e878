"""Request ids, JSON logs and Prometheus metrics, as one pure ASGI middleware."""

import json
import logging
import sys
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
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


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (one per app instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("claimledger_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "claimledger_http_request_duration_seconds", "HTTP request latency",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.in_flight = Gauge("claimledger_http_requests_in_flight", "Requests being served",
                               registry=self.registry)
        self.ingested = Counter("claimledger_ingest_items_total", "Ingested items by result",
                                ["result"], registry=self.registry)
        self.write_batch = Histogram(
            "claimledger_claim_write_batch_size", "Claims committed together (group commit)",
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64))
        self.claim_cache = Counter(
            "claimledger_claim_cache_total", "GET /v1/claims/{id} served from a rendered copy "
            "(hit) or rendered anew (miss)", ["result"], registry=self.registry)
        self.rate_limited = Counter("claimledger_rate_limited_total",
                                    "Requests refused by the rate limit", registry=self.registry)
        self._pools: list[Any] = []

    def watch_pool(self, engine: Any) -> None:
        pool = engine.pool
        metrics = self

        class PoolCollector:
            def collect(self) -> Any:
                for name, value in (("checked_out", pool.checkedout()),
                                    ("size", pool.size()), ("overflow", pool.overflow())):
                    family = GaugeMetricFamily(f"claimledger_db_pool_{name}",
                                               f"Database pool: {name.replace('_', ' ')}")
                    family.add_metric([], value)
                    yield family

        collector = PoolCollector()
        self.registry.register(collector)  # type: ignore[arg-type]
        metrics._pools.append(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


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
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            text = value.decode("latin-1")
            return text[:100] if text.isprintable() else None
    return None
