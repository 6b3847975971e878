"""Publishing a claim's verdict, withdrawing it, and its ClaimReview JSON-LD."""

import json

from fastapi import APIRouter, Response

from app.api import ETAG, READ_ERRORS, WRITE_ERRORS, errors, with_headers
from app.deps import (
    CheckerKey,
    ClaimForUpdate,
    IdempotencyDep,
    OptionalVersion,
    ReaderKey,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
    etag,
    set_etag,
)
from app.domain import claimreview, publishing
from app.models import PublicationCreate, PublicationPublic

router = APIRouter(prefix="/v1/claims", tags=["publishing"], responses=READ_ERRORS)

LD_JSON = "application/ld+json"

# What every ClaimReview carries (Google's required and recommended fields among them).
CLAIM_REVIEW_SCHEMA = {
    "type": "object",
    "required": ["@context", "@type", "url", "headline", "claimReviewed", "datePublished",
                 "dateModified", "author", "reviewRating", "itemReviewed"],
    "properties": {
        "@context": {"const": "https://schema.org"},
        "@type": {"const": "ClaimReview"},
        "url": {"type": "string"},
        "headline": {"type": "string"},
        "claimReviewed": {"type": "string"},
        "inLanguage": {"type": "string"},
        "datePublished": {"type": "string", "format": "date-time"},
        "dateModified": {"type": "string", "format": "date-time"},
        "reviewBody": {"type": "string"},
        "image": {"type": "string"},
        "author": {"type": "object", "required": ["@type", "name"]},
        "reviewRating": {
            "type": "object", "required": ["@type", "alternateName"],
            "properties": {"@type": {"const": "Rating"},
                           "ratingValue": {"type": "integer", "minimum": 1, "maximum": 5},
                           "worstRating": {"const": 1}, "bestRating": {"const": 5},
                           "alternateName": {"type": "string"}}},
        "itemReviewed": {"type": "object", "required": ["@type"],
                         "properties": {"@type": {"const": "Claim"}}},
    },
}


@router.post("/{claim_id}/publish", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def publish_claim(
    claim_id: str,  # ClaimForUpdate's; named first so the document lists it first
    pub_in: PublicationCreate, key: CheckerKey, version: OptionalVersion,
    idem: IdempotencyDep, session: WriteSessionDep, response: Response, claim: ClaimForUpdate,
) -> PublicationPublic:
    """Publish the claim's current verdict as a fact-check at `url` (again: it replaces the
    published copy and moves `dateModified`). Only a verdict can be published (409)."""
    pub = publishing.publish(session, claim=claim, pub_in=pub_in, expected_version=version,
                             actor=key.name)
    public = PublicationPublic.model_validate(pub)
    idem.save(session, status=200, body=public, headers={"ETag": etag(claim.version)})
    session.commit()
    set_etag(response, claim.version)
    return public


@router.delete("/{claim_id}/publish", status_code=204, responses=WRITE_ERRORS)
def withdraw_claim(
    claim_id: str,  # ClaimForUpdate's; named first so the document lists it first
    key: CheckerKey, version: OptionalVersion, session: WriteSessionDep, claim: ClaimForUpdate,
) -> None:
    """Withdraw the published verdict: it disappears from the ClaimReview, the public pages,
    the feeds and the Fact Check Tools API."""
    publishing.withdraw(session, claim=claim, expected_version=version, actor=key.name)
    session.commit()


@router.get("/{claim_id}/claimreview", response_class=Response, responses={
    200: {"description": "The published verdict as schema.org ClaimReview",
          "content": {LD_JSON: {"schema": CLAIM_REVIEW_SCHEMA}}},
    **errors(400, 401, 403, 404, 422, 429, 503)})
def get_claimreview(
    claim_id: str, _: ReaderKey, session: SessionDep, settings: SettingsDep,
) -> Response:
    """The published verdict as schema.org ClaimReview JSON-LD; 404 if not published."""
    pub, claim = publishing.get_published(session, claim_id)
    body = claimreview.claim_review(pub, claim, publishing.publisher_of(settings))
    return Response(json.dumps(body, ensure_ascii=False), media_type=LD_JSON)
