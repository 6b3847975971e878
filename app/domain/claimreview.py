"""Pure mappings of a published verdict to schema.org ClaimReview and to the shapes of
Google's Fact Check Tools API (v1alpha1). No I/O: the caller reads the rows."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from app.models import (
    AttributionPublic,
    ClaimPublic,
    Publication,
    SourceKind,
    Stance,
    Status,
    to_utc,
)

# The 1-5 scale, false to true; a verdict with no place on it carries its text alone.
WORST, BEST = 1, 5
RATINGS: dict[Status, tuple[int | None, str]] = {
    Status.false: (1, "False"),
    Status.mostly_false: (2, "Mostly false"),
    Status.mixed: (3, "Mixed"),
    Status.mostly_true: (4, "Mostly true"),
    Status.true: (5, "True"),
    Status.misleading: (None, "Misleading"),
    Status.unverifiable: (None, "Unverifiable"),
}
# Sources that speak for themselves are people; the rest organisations.
PERSON_KINDS = frozenset({SourceKind.expert, SourceKind.eyewitness})


@dataclass(frozen=True)
class Publisher:
    """The publishing organisation (settings `publisher_*`)."""

    name: str
    site_url: str
    logo_url: str = ""

    @property
    def site(self) -> str:
        """The site as Google's `publisher.site` names it: the host, such as `example.org`."""
        return (urlsplit(self.site_url).hostname or "").removeprefix("www.")

    def page_url(self, claim_id: str) -> str:
        """The public page of a published fact-check (its canonical URL)."""
        return f"{self.site_url.rstrip('/')}/c/{claim_id}"


def timestamp(value: datetime) -> str:
    """RFC 3339 UTC to the second, as schema.org and Google's API write times."""
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[union-attr]


def rating(status: Status) -> dict[str, Any]:
    value, text = RATINGS[status]
    out: dict[str, Any] = {"@type": "Rating"}
    if value is not None:
        out.update(ratingValue=value, worstRating=WORST, bestRating=BEST)
    out["alternateName"] = text
    return out


def status_for_rating(text: str | None, value: int | None) -> Status | None:
    """The verdict a textual rating (any case) or a 1-5 value names; None if neither does."""
    if text:
        wanted = " ".join(text.lower().replace("_", " ").split())
        for status, (_, label) in RATINGS.items():
            if label.lower() == wanted:
                return status
        return None
    for status, (scale, _) in RATINGS.items():
        if value is not None and scale == value:
            return status
    return None


def _author(att: AttributionPublic) -> dict[str, Any]:
    kind = "Person" if att.source.kind in PERSON_KINDS else "Organization"
    return {"@type": kind, "name": att.source.name}


def asserting(claim: ClaimPublic) -> list[AttributionPublic]:
    """The attributions of the sources that made the claim, each source once, in order."""
    seen: set[str] = set()
    out = []
    for att in claim.attributions:
        if att.stance == Stance.asserts and att.source.id not in seen:
            seen.add(att.source.id)
            out.append(att)
    return out


def appearances(claim: ClaimPublic) -> list[dict[str, Any]]:
    """The claim's citations as CreativeWorks, earliest first, each URL once."""
    def when(att: AttributionPublic) -> str:
        stated = att.stated_at or att.created_at
        if att.citation_published_date is not None:
            return min(att.citation_published_date.isoformat(), timestamp(stated))
        return timestamp(stated)

    works: dict[str, dict[str, Any]] = {}
    for att in sorted(claim.attributions, key=lambda a: (when(a), a.id)):
        if att.citation_url is None or att.citation_url in works:
            continue
        work: dict[str, Any] = {"@type": "CreativeWork", "url": att.citation_url}
        if att.citation_title:
            work["headline"] = att.citation_title
        if att.citation_published_date is not None:
            work["datePublished"] = att.citation_published_date.isoformat()
        works[att.citation_url] = work
    return list(works.values())


def organization(publisher: Publisher) -> dict[str, Any]:
    out: dict[str, Any] = {"@type": "Organization", "name": publisher.name,
                           "url": publisher.site_url}
    if publisher.logo_url:
        out["logo"] = {"@type": "ImageObject", "url": publisher.logo_url}
    return out


def claim_review(pub: Publication, claim: ClaimPublic, publisher: Publisher) -> dict[str, Any]:
    """The schema.org ClaimReview of a published verdict (the verdict as published)."""
    item: dict[str, Any] = {"@type": "Claim"}
    authors = [_author(a) for a in asserting(claim)]
    if authors:
        item["author"] = authors[0] if len(authors) == 1 else authors
    if claim.first_stated_at is not None:
        item["datePublished"] = timestamp(claim.first_stated_at)
    works = appearances(claim)
    if works:
        item["appearance"] = works
        item["firstAppearance"] = works[0]
    review: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "url": pub.url,
        "headline": pub.headline,
        "claimReviewed": claim.text,
        "inLanguage": claim.language,
        "datePublished": timestamp(pub.published_at),
        "dateModified": timestamp(pub.modified_at),
        "author": organization(publisher),
        "reviewRating": rating(Status(pub.status)),
        "itemReviewed": item,
    }
    if pub.rationale:
        review["reviewBody"] = pub.rationale
    if pub.image_url:
        review["image"] = pub.image_url
    return review


# --- Google Fact Check Tools v1alpha1 -----------------------------------------


def search_claim(pub: Publication, claim: ClaimPublic, publisher: Publisher) -> dict[str, Any]:
    """One `claims[]` item of `claims:search` (protobuf JSON: empty fields left out)."""
    out: dict[str, Any] = {"text": claim.text}
    makers = asserting(claim)
    if makers:
        out["claimant"] = ", ".join(a.source.name for a in makers)
    if claim.first_stated_at is not None:
        out["claimDate"] = timestamp(claim.first_stated_at)
    out["claimReview"] = [{
        "publisher": {"name": publisher.name, "site": publisher.site},
        "url": pub.url,
        "title": pub.headline,
        "reviewDate": timestamp(pub.modified_at),
        "textualRating": RATINGS[Status(pub.status)][1],
        "languageCode": claim.language,
    }]
    return out


def page_name(claim_id: str) -> str:
    return f"pages/{claim_id}"


def markup_page(pub: Publication, claim: ClaimPublic, publisher: Publisher) -> dict[str, Any]:
    """The `ClaimReviewMarkupPage` of a published verdict (pages API)."""
    value, text = RATINGS[Status(pub.status)]
    rated: dict[str, Any] = {"textualRating": text}
    if value is not None:
        rated.update(ratingValue=value, worstRating=WORST, bestRating=BEST)
    if pub.rationale:
        rated["ratingExplanation"] = pub.rationale
    markup: dict[str, Any] = {"claimReviewed": claim.text, "url": pub.url, "rating": rated}
    makers = asserting(claim)
    if makers:
        markup["claimAuthor"] = {"name": makers[0].source.name}
    if claim.first_stated_at is not None:
        markup["claimDate"] = timestamp(claim.first_stated_at)
    works = appearances(claim)
    if works:
        markup["claimFirstAppearance"] = works[0]["url"]
        markup["claimAppearances"] = [w["url"] for w in works]
    author: dict[str, Any] = {"name": publisher.name}
    if publisher.logo_url:
        author["imageUrl"] = publisher.logo_url
    return {
        "name": page_name(claim.id),
        "pageUrl": pub.url,
        "publishDate": timestamp(pub.published_at),
        "claimReviewAuthor": author,
        "claimReviewMarkups": [markup],
        "versionId": str(int(to_utc(pub.modified_at).timestamp() * 1_000_000)),  # type: ignore[union-attr]
    }
