"""Liveness and readiness."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.db import ping
from app.deps import DatabaseDep, ReaderKey
from app.migrate import pending_migrations
from app.models import Health, Problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Health, "description": "Not ready"}})
def readyz(db: DatabaseDep) -> Health:
    """The database answers and every migration has been applied."""
    try:
        ping(db.engine)
        pending = pending_migrations(db.engine)
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse(  # type: ignore[return-value]
            Health(status="unavailable", detail=f"database: {type(exc).__name__}").model_dump(),
            status_code=503,
        )
    if pending:
        return JSONResponse(  # type: ignore[return-value]
            Health(status="migrating", detail=f"pending migrations: {', '.join(pending)}")
            .model_dump(), status_code=503,
        )
    return Health(status="ok")


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string"}}},
          "description": "Prometheus text format"},
    401: {"model": Problem, "description": "No valid API key"},
    429: {"model": Problem, "description": "Rate limit exceeded"},
})
def metrics(request: Request, _: ReaderKey) -> Response:
    """Prometheus metrics: requests and latency by route and status, pool, ingest counters."""
    return Response(request.app.state.metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
