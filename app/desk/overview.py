"""The overview: counts by status, contested claims and claims per day, as charts with the
figures in tables (their text alternative)."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.desk import charts
from app.desk.web import STATUS_LABELS, desk_router, render, signed_in
from app.domain import stats
from app.models import Status

router = desk_router()


@router.get("/overview")
async def overview_page(request: Request) -> Response:
    """Counts by status, contested claims and claims per day, as charts and tables."""
    desk = await signed_in(request)

    def load() -> dict[str, Any]:
        until = datetime.now(UTC).date()
        since = until - timedelta(days=29)
        cache: stats.StatsCache = request.app.state.stats_cache
        with desk.db.session() as session:
            figures = cache.get(session, (since, until, 10), lambda: stats.ledger_stats(
                session, since=since, until=until, top=10))
        by_status = [(STATUS_LABELS[s], figures.by_status.get(s, 0)) for s in Status]
        days = [(d.date.isoformat() if isinstance(d.date, date) else str(d.date),
                 d.claims, d.reviews) for d in figures.per_day]
        contested = [("Contested", figures.contested),
                     ("Not contested", figures.claims - figures.contested)]
        return {"figures": figures, "by_status": by_status, "days": days,
                "contested_rows": contested,
                "status_chart": charts.bar_chart("status-chart", "Claims by status", by_status),
                "contested_chart": charts.bar_chart("contested-chart", "Contested claims",
                                                    contested),
                "day_chart": charts.day_chart("day-chart", "Claims and reviews per day, "
                                              "last 30 days", days)}

    return render(request, "overview.html", desk=desk, **await run_in_threadpool(load))
