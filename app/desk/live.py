"""The live feed for desk pages: /v1/events/stream itself, under the desk's cookie."""

from fastapi import Request
from starlette.responses import Response

from app.api import events as api_events
from app.desk.web import STREAM_PATH, desk_router, signed_in

router = desk_router()


@router.get(STREAM_PATH)
async def desk_events(request: Request) -> Response:
    """The live feed for desk pages: /v1/events/stream itself, authenticated by the desk's
    cookie instead of an Authorization header (an EventSource cannot send one)."""
    desk = await signed_in(request)
    claim_id = request.query_params.get("claim_id") or None
    cursor = request.query_params.get("cursor") or None
    return await api_events.stream_events(
        desk.key, request.app.state.db, desk.settings, cursor=cursor, claim_id=claim_id,
        action=None, last_event_id=request.headers.get("last-event-id"), poll_seconds=1.0)
