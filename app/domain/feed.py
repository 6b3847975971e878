"""Where the change feed stands: the position a live view starts following from."""

import sqlalchemy as sa
from sqlmodel import Session, col

from app.models import Event


def latest_event_id(session: Session, *, claim_id: str | None = None) -> int:
    """The id of the newest event (of one claim's, if given); 0 when there is none."""
    query = sa.select(sa.func.max(col(Event.id)))
    if claim_id is not None:
        query = query.where(col(Event.claim_id) == claim_id)
    return session.connection().execute(query).scalar() or 0
