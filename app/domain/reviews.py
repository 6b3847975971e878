"""Status rules: every change of a claim's status is a review row and an event."""

from sqlmodel import Session, select

from app.domain.claims import ensure_not_merged, touch
from app.domain.events import record_claim_event
from app.domain.preconditions import IfMatch, check_version
from app.errors import Unprocessable
from app.models import Claim, Review, ReviewCreate, Status


def set_status(
    session: Session, *, claim: Claim, review_in: ReviewCreate, expected_version: IfMatch | None,
    reviewer: str,
) -> Review:
    """Move a claim to a new status; a verdict needs a rationale."""
    # The request's own rules (which the OpenAPI document states) before the claim's state:
    # an invalid review is a 422 whatever the claim's version.
    new = Status(review_in.status)
    if new is Status.unverified:
        raise Unprocessable("unverified is the status of a new claim; reopen with in_review")
    if new.is_verdict and not review_in.rationale:
        raise Unprocessable(f"a verdict ({new}) needs a rationale")
    ensure_not_merged(claim)
    check_version(claim.version, expected_version, f"claim {claim.id}")
    if new == claim.status:
        raise Unprocessable(f"claim {claim.id} is already {new}")
    review = Review(
        claim_id=claim.id, from_status=claim.status, to_status=new,
        rationale=review_in.rationale, evidence_urls=review_in.evidence_urls, reviewer=reviewer,
    )
    session.add(review)
    claim.status = new
    touch(claim)
    review.created_at = claim.updated_at
    session.add(claim)
    record_claim_event(
        session, claim, actor=reviewer, action="review.created", entity_type="review",
        entity_id=review.id,
        changes={"status": {"from": review.from_status, "to": new}, "rationale": review.rationale},
    )
    return review


def reviews_of(session: Session, claim_id: str) -> list[Review]:
    return list(session.exec(select(Review).where(Review.claim_id == claim_id)
                             .order_by(Review.created_at, Review.id)).all())
