"""A verdict stands on the text it was given for: when a claim's text changes under a
verdict (an edit, or an ingest update of its feed item), the claim goes back to
`in_review` with a review row and an event that says why; a published verdict is never
reopened this way."""

from sqlmodel import Session

from app.domain.events import record_claim_event
from app.errors import Conflict
from app.models import Claim, Publication, Review, Status, utcnow

TEXT_CHANGED = "the claim's text changed after its verdict was given; it needs a new review"
PUBLISHED = "claim has a published verdict; a checker must edit it"


def has_verdict(claim: Claim) -> bool:
    return Status(claim.status).is_verdict


def has_published_verdict(session: Session, claim: Claim) -> bool:
    """Whether the claim has a live (not withdrawn) publication: ingest updates of its text
    are then refused."""
    publication = session.get(Publication, claim.id)
    return publication is not None and publication.withdrawn_at is None


def check_ingest_update(session: Session, claim: Claim, text: str) -> None:
    """409 (before anything is written) if an ingest update would change the text under a
    published verdict."""
    if text != claim.text and has_verdict(claim) and has_published_verdict(session, claim):
        raise Conflict(f"{PUBLISHED} (claim {claim.id} is {claim.status})", claim_id=claim.id)


def reopen_after_text_change(session: Session, claim: Claim, *, actor: str) -> Review | None:
    """Back to `in_review` if the claim (whose text just changed) had a verdict; the review
    row and the event name `actor` and the reason."""
    if not has_verdict(claim):
        return None
    review = Review(claim_id=claim.id, from_status=claim.status, to_status=Status.in_review,
                    rationale=TEXT_CHANGED, reviewer=actor)
    session.add(review)
    claim.status = Status.in_review
    claim.version += 1
    claim.updated_at = review.created_at = utcnow()
    session.add(claim)
    record_claim_event(
        session, claim, actor=actor, action="review.created", entity_type="review",
        entity_id=review.id,
        changes={"status": {"from": review.from_status, "to": Status.in_review},
                 "rationale": TEXT_CHANGED, "reason": "text_changed"},
    )
    return review
