"""Ledger statistics for dashboards."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.api import READ_ERRORS
from app.deps import ReaderKey, SessionDep
from app.domain import stats
from app.errors import Unprocessable
from app.models import InputDate

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=READ_ERRORS)


@router.get("")
def get_stats(
    request: Request,
    _: ReaderKey,
    session: SessionDep,
    since: Annotated[
        InputDate | None, Query(description="First day of `per_day` (default: 30 days ago)")
    ] = None,
    until: Annotated[
        InputDate | None, Query(description="Last day of `per_day` (default: today, UTC)")
    ] = None,
    top: Annotated[int, Query(ge=1, le=100)] = 20,
) -> stats.Stats:
    """Counts by status, source, source kind and topic; contested; claims and reviews per day.

    Computed afresh after any change to the ledger, otherwise answered from memory.
    """
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=29)
    if since > until:
        raise Unprocessable("since is after until")
    if (until - since).days > 366 * 5:
        raise Unprocessable("per_day covers at most five years; narrow since/until")
    cache: stats.StatsCache = request.app.state.stats_cache
    return cache.get(session, (since, until, top), lambda: stats.ledger_stats(
        session, since=since, until=until, top=top))
