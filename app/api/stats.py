"""Ledger statistics for dashboards."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.api import READ_ERRORS
from app.deps import ReaderKey, SessionDep
from app.domain import stats
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
    return stats.cached_stats(session, cache=request.app.state.stats_cache, since=since,
                              until=until, top=top)
