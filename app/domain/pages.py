"""Google's ClaimReview markup pages API, mapped onto publishing: a page is one published
verdict, named `pages/{claim_id}`. Creating a page for a claim not in the ledger creates the
claim, its claimant source and the verdict; deleting a page withdraws the verdict."""

from datetime import UTC, date, datetime

from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.domain import claims, listing, publishing, rendering, reviews
from app.domain.claimreview import RATINGS, page_name, status_for_rating
from app.domain.text import fingerprint
from app.errors import BadRequest, Conflict, NotFound
from app.models import (
    AttributionCreate,
    Claim,
    ClaimCreate,
    ClaimPublic,
    ClaimReviewMarkup,
    ClaimReviewMarkupPage,
    Publication,
    PublicationCreate,
    ReviewCreate,
    Status,
)

HEADLINE_CHARS = 110  # Google's advice for a headline's length


def _one_markup(page: ClaimReviewMarkupPage) -> ClaimReviewMarkup:
    if page.pageUrl is None:
        raise BadRequest("pageUrl is required: the absolute URL of the fact-check")
    markups = page.claimReviewMarkups or []
    if len(markups) != 1:
        raise BadRequest("a page here reviews exactly one claim: send one claimReviewMarkups "
                         f"item (this page has {len(markups)})")
    markup = markups[0]
    if not markup.claimReviewed:
        raise BadRequest("claimReviewMarkups[0].claimReviewed is required")
    return markup


def _status(markup: ClaimReviewMarkup) -> Status:
    rating = markup.rating
    status = status_for_rating(rating.textualRating, rating.ratingValue) if rating else None
    if status is None:
        names = ", ".join(label for _, label in RATINGS.values())
        raise BadRequest("claimReviewMarkups[0].rating needs a textualRating this ledger knows "
                         f"({names}) or a ratingValue from 1 (false) to 5 (true)")
    return status


def _claim_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise BadRequest("claimDate must be an ISO 8601 date or time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _headline(text: str) -> str:
    return text if len(text) <= HEADLINE_CHARS else text[:HEADLINE_CHARS - 1].rstrip() + "…"


def _review_to(session: Session, claim: Claim, status: Status, markup: ClaimReviewMarkup,
               page_url: str, actor: str) -> None:
    """Record the page's verdict as a review, unless the claim already has it."""
    if claim.status == status:
        return
    explanation = markup.rating.ratingExplanation if markup.rating else None
    rationale = explanation or f"Rated “{RATINGS[status][1]}” in the fact-check at {page_url}."
    reviews.create_review(session, claim=claim, expected_version=None, reviewer=actor,
                          review_in=ReviewCreate(status=status, rationale=rationale))


def _new_claim(session: Session, markup: ClaimReviewMarkup, actor: str) -> Claim:
    urls = list(dict.fromkeys(
        [u for u in [markup.claimFirstAppearance, *(markup.claimAppearances or [])] if u]))
    name = markup.claimAuthor.name if markup.claimAuthor else None
    try:
        attributions = []
        if name:
            attributions = [AttributionCreate(source=name, stance="asserts", citation_url=url)
                            for url in urls[:100]] or [AttributionCreate(source=name,
                                                                         stance="asserts")]
        claim_in = ClaimCreate(text=markup.claimReviewed, attributions=attributions,
                               first_stated_at=_claim_date(markup.claimDate))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BadRequest(f"the markup does not make a valid claim: {where}: {error['msg']}"
                         ) from None
    return claims.create_claim(session, claim_in=claim_in, actor=actor)


def create_page(session: Session, *, page: ClaimReviewMarkupPage, actor: str
                ) -> tuple[Publication, ClaimPublic]:
    """Publish the page's verdict on the claim it reviews (created if the ledger lacks it)."""
    markup = _one_markup(page)
    status = _status(markup)
    claim = session.exec(select(Claim).where(
        Claim.fingerprint == fingerprint(markup.claimReviewed), listing.not_merged()
    ).order_by(col(Claim.created_at), col(Claim.id)).limit(1)).first()
    if claim is None:
        claim = _new_claim(session, markup, actor)
    else:
        live = session.get(Publication, claim.id)
        if live is not None and live.withdrawn_at is None:
            raise Conflict(f"claim {claim.id} is published already, as {page_name(claim.id)}; "
                           "update that page instead")
    _review_to(session, claim, status, markup, page.pageUrl, actor)  # type: ignore[arg-type]
    pub = publishing.publish(session, claim=claim, expected_version=None, actor=actor,
                             pub_in=PublicationCreate(url=page.pageUrl,
                                                      headline=_headline(claim.text)))
    return pub, rendering.claim_public(session, claim)


def claim_of(name: str) -> str:
    return name.removeprefix("pages/")


def update_page(session: Session, *, claim_id: str, page: ClaimReviewMarkupPage, actor: str
                ) -> tuple[Publication, ClaimPublic]:
    """Replace a page: its URL and its verdict (published again). It cannot change which
    claim it reviews."""
    pub = session.get(Publication, claim_id)
    if pub is None or pub.withdrawn_at is not None:
        raise NotFound(f"{page_name(claim_id)} does not exist")
    if page.name is not None and page.name != page_name(claim_id):
        raise BadRequest(f"the body names {page.name[:200]}, not {page_name(claim_id)}")
    markup = _one_markup(page)
    claim = claims.get_claim(session, claim_id, for_update=True)
    if fingerprint(markup.claimReviewed) != claim.fingerprint:  # type: ignore[arg-type]
        raise BadRequest(f"claimReviewed names another claim than {page_name(claim_id)} "
                         "reviews; create a page for that claim instead")
    status = _status(markup)
    _review_to(session, claim, status, markup, page.pageUrl, actor)  # type: ignore[arg-type]
    pub = publishing.publish(session, claim=claim, expected_version=None, actor=actor,
                             pub_in=PublicationCreate(url=page.pageUrl, headline=pub.headline,
                                                      image_url=pub.image_url))
    return pub, rendering.claim_public(session, claim)


def delete_page(session: Session, *, claim_id: str, actor: str) -> None:
    """Withdraw the page's verdict from everything public."""
    pub = session.get(Publication, claim_id)
    if pub is None or pub.withdrawn_at is not None:
        raise NotFound(f"{page_name(claim_id)} does not exist")
    claim = claims.get_claim(session, claim_id, for_update=True)
    publishing.withdraw(session, claim=claim, expected_version=None, actor=actor)
