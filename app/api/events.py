"""The change feed: every event after a cursor."""

from typing import Annotated

from fastapi import APIRouter, Query

from app import crud
from app.api import READ_ERRORS
from app.deps import CursorDep, LimitDep, ReaderKey, SessionDep
from app.models import EventPublic
from app.pagination import Page, decode_position, encode_cursor

router = APIRouter(prefix="/v1/events", tags=["events"], responses=READ_ERRORS)


@router.get("")
def list_events(
    _: ReaderKey, session: SessionDep, limit: LimitDep, cursor: CursorDep = None,
    claim_id: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    entity_type: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[EventPublic]:
    """Events in order after `cursor`. `next_cursor` is always set: poll again with it."""
    after = decode_position(cursor)
    events = crud.list_events(session, after=after, limit=limit, claim_id=claim_id,
                              action=action, entity_type=entity_type)
    position = events[-1].id if events else after
    return Page(items=[EventPublic.model_validate(e) for e in events],
                next_cursor=encode_cursor(position))

