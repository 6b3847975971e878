"""The event log: every change appends an event in the caller's transaction; the
history read back from it (the feed, a claim's events, a claim as of a time).
"""

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from app.domain import search
from app.domain.locks import lock_event_feed
from app.domain.rendering import claims_public
from app.errors import NotFound
from app.models import (
    Claim,
    ClaimPublic,
    Event,
    utcnow,
)


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    claim_id: str | None = None,
    changes: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    """Append one event to the change log, in the caller's transaction."""
    lock_event_feed(session)
    event = Event(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        claim_id=claim_id,
        changes=changes or {},
        snapshot=snapshot,
        at=at or utcnow(),
    )
    session.add(event)
    return event


def record_claim_event(
    session: Session, claim: Claim, *, actor: str, action: str, changes: dict[str, Any],
    entity_type: str = "claim", entity_id: str | None = None,
    public: ClaimPublic | None = None, document: str | None = None,
) -> Event:
    """An event about a claim, carrying the claim as it now stands (for `as_of`).

    Every change to a claim passes here, so this is also where the search index follows.
    A caller that already holds the claim's representation and search document passes
    them, and nothing is read back.
    """
    session.flush()
    if public is None or document is None:
        search.index_claims(session, [claim.id])
        public = claims_public(session, [claim])[0]
    else:
        search.index_documents(session, {claim.id: document})
    # The route usually answers with this very representation: keep it for claim_public.
    session.info.setdefault("claim_public", {})[claim.id] = public
    snapshot = public.model_dump(mode="json")
    return record_event(
        session, actor=actor, action=action, entity_type=entity_type,
        entity_id=entity_id or claim.id, claim_id=claim.id, changes=changes,
        snapshot=snapshot, at=claim.updated_at,
    )


def jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def list_events(
    session: Session, *, after: int = 0, limit: int, claim_id: str | None = None,
    action: str | None = None, entity_type: str | None = None,
) -> list[Event]:
    query = select(Event).where(col(Event.id) > after)
    if claim_id is not None:
        query = query.where(Event.claim_id == claim_id)
    if action is not None:
        query = query.where(Event.action == action)
    if entity_type is not None:
        query = query.where(Event.entity_type == entity_type)
    return list(session.exec(query.order_by(Event.id).limit(limit)).all())


def claim_as_of(session: Session, *, claim_id: str, as_of: datetime) -> ClaimPublic:
    """The claim as it stood at `as_of`, replayed from the snapshots in its events."""
    event = session.exec(
        select(Event).where(Event.claim_id == claim_id, col(Event.snapshot).is_not(None),
                            Event.at <= as_of)
        .order_by(col(Event.at).desc(), col(Event.id).desc()).limit(1)
    ).first()
    if event is None:
        raise NotFound(f"claim {claim_id} did not exist at {as_of.isoformat()}")
    if event.action == "claim.deleted":
        raise NotFound(f"claim {claim_id} had been deleted by {as_of.isoformat()}")
    return ClaimPublic.model_validate(event.snapshot)
