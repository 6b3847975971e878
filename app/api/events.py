"""The change feed: every event after a cursor, as JSON pages or as Server-Sent Events."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from app.api import READ_ERRORS
from app.deps import CursorDep, DatabaseDep, LimitDep, ReaderKey, SessionDep, SettingsDep
from app.domain.events import list_events as read_events
from app.domain.pagination import Page, decode_position, encode_cursor
from app.models import EventPublic

router = APIRouter(prefix="/v1/events", tags=["events"], responses=READ_ERRORS)

ClaimFilter = Annotated[str | None, Query(max_length=100)]
ActionFilter = Annotated[str | None, Query(max_length=64)]
TypeFilter = Annotated[str | None, Query(max_length=32)]


@router.get("")
def list_events(
    _: ReaderKey, session: SessionDep, limit: LimitDep, cursor: CursorDep = None,
    claim_id: ClaimFilter = None, action: ActionFilter = None, entity_type: TypeFilter = None,
) -> Page[EventPublic]:
    """Events in order after `cursor`. `next_cursor` is always set: poll again with it."""
    after = decode_position(cursor)
    events = read_events(session, after=after, limit=limit, claim_id=claim_id,
                         action=action, entity_type=entity_type)
    position = events[-1].id if events else after
    return Page(items=[EventPublic.model_validate(e) for e in events],
                next_cursor=encode_cursor(position))


# Before OpenAPI 3.2 (`itemSchema`), the `schema` of an event stream describes one event.
SSE_EVENT = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "description": "The cursor after this event"},
        "event": {"type": "string", "description": "The event's action"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/EventPublic"}},
    },
}


@router.get("/stream", response_class=EventSourceResponse, responses={200: {
    "content": {"text/event-stream": {"schema": SSE_EVENT}},
    "description": "Server-Sent Events: `id` is the cursor, `data` an event as JSON"}})
async def stream_events(
    _: ReaderKey, db: DatabaseDep, settings: SettingsDep, cursor: CursorDep = None,
    claim_id: ClaimFilter = None, action: ActionFilter = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=1000)] = None,
    poll_seconds: Annotated[float, Query(ge=0.1, le=10)] = 1.0,
) -> EventSourceResponse:
    """The live feed: events after `cursor` (or `Last-Event-ID` on reconnect), as they happen.

    It reads the event table, so every worker and instance serves the same feed.
    """
    position = decode_position(last_event_id or cursor)

    def fetch(after: int) -> list[EventPublic]:
        with db.session() as session:
            return [EventPublic.model_validate(e) for e in read_events(
                session, after=after, limit=200, claim_id=claim_id, action=action)]

    async def events() -> AsyncIterator[dict[str, str]]:
        # Runs until sse-starlette cancels it: the client left, or the server is stopping.
        after = position
        while True:
            batch = await run_in_threadpool(fetch, after)
            for event in batch:
                after = event.id
                yield {"id": encode_cursor(event.id), "event": event.action,
                       "data": event.model_dump_json()}
            if len(batch) < 200:
                await asyncio.sleep(poll_seconds)

    return EventSourceResponse(events(), ping=settings.feed_heartbeat_seconds)
