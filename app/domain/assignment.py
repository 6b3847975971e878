"""Who works on which claim: assigning a claim to a checker, and a checker's queue."""

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from app.domain import claims, events, listing, preconditions, rendering
from app.domain.preconditions import IfMatch
from app.models import Claim, ClaimPublic, Status

# Claims still waiting for a verdict.
WAITING = (Status.unverified, Status.in_review)


def assign_claim(session: Session, *, claim: Claim, assignee: str | None,
                 expected_version: IfMatch | None, actor: str) -> Claim:
    """Hand the claim to `assignee` (a key's name) or to nobody; an event records the change.

    Assigning the claim to whom it is already assigned changes nothing and records nothing.
    """
    claims.ensure_not_merged(claim)
    preconditions.check_version(claim.version, expected_version, f"claim {claim.id}")
    if claim.assignee == assignee:
        return claim
    changes: dict[str, Any] = {"assignee": {"from": claim.assignee, "to": assignee}}
    claim.assignee = assignee
    claims.touch(claim)
    session.add(claim)
    events.record_claim_event(session, claim, actor=actor, action="claim.assigned",
                            changes=changes)
    return claim


def assignee_filter(assignee: str) -> sa.ColumnElement[bool]:
    """WHERE clause: claims assigned to this name."""
    return col(Claim.assignee) == assignee


def queue(session: Session, *, assignee: str | None = None, limit: int = 50,
          offset: int = 0) -> tuple[list[ClaimPublic], bool]:
    """Claims waiting for a verdict, contested first, then oldest first; `assignee` keeps
    only those assigned to that name. Returns the page and whether more follow."""
    listing.read_snapshot(session)
    where = listing.claim_filters(status=list(WAITING))
    if assignee is not None:
        where.append(assignee_filter(assignee))
    contested_first = sa.case((listing.contested_clause(True), 0), else_=1)
    rows = session.connection().execute(
        sa.select(col(Claim.id)).where(*where)
        .order_by(contested_first, col(Claim.created_at), col(Claim.id))
        .offset(offset).limit(limit + 1)).all()
    ids = [row.id for row in rows[:limit]]
    return rendering.claims_by_id(session, ids), len(rows) > limit
