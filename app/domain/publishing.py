"""Publishing verdicts: publish, withdraw, read and list what the public sees.

A publication copies the claim's verdict when it is published; later reviews change nothing
public until a checker publishes again. Both publishing and withdrawing are events in the
claim's history. Functions take the session first and never commit.
"""

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.config import Settings
from app.domain import claims, events, preconditions, rendering, search
from app.domain.claimreview import Publisher
from app.domain.pagination import (
    after_position,
    decode_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
)
from app.domain.preconditions import IfMatch
from app.errors import BadRequest, Conflict, Gone, NotFound
from app.models import Claim, ClaimPublic, Publication, PublicationCreate, Review, Status, utcnow


def publisher_of(settings: Settings) -> Publisher:
    return Publisher(name=settings.publisher_name, site_url=settings.publisher_site_url,
                     logo_url=settings.publisher_logo_url)


def _latest_review(session: Session, claim_id: str) -> Review | None:
    return session.exec(select(Review).where(Review.claim_id == claim_id).order_by(
        col(Review.created_at).desc(), col(Review.id).desc()).limit(1)).first()


def publish(session: Session, *, claim: Claim, pub_in: PublicationCreate,
            expected_version: IfMatch | None, actor: str) -> Publication:
    """Publish the claim's current verdict (again: the copy and dateModified move)."""
    claims.ensure_not_merged(claim)
    preconditions.check_version(claim.version, expected_version, f"claim {claim.id}")
    status = Status(claim.status)
    if not status.is_verdict:
        raise Conflict(f"claim {claim.id} is {status}: only a verdict can be published; "
                       "record one with POST /v1/claims/{claim_id}/reviews first",
                       claim_status=status.value)
    review = _latest_review(session, claim.id)
    pub = session.get(Publication, claim.id)
    republished = pub is not None and pub.withdrawn_at is None
    claims.touch(claim)
    now = claim.updated_at
    if pub is None:
        pub = Publication(claim_id=claim.id, url=pub_in.url, headline=pub_in.headline,
                          status=status, published_by=actor, published_at=now, modified_at=now)
    elif not republished:  # withdrawn before: a new publication
        pub.published_at = now
    pub.url, pub.headline, pub.image_url = pub_in.url, pub_in.headline, pub_in.image_url
    pub.status, pub.rationale = status, review.rationale if review else None
    pub.review_id = review.id if review else None
    pub.modified_at, pub.withdrawn_at, pub.published_by = now, None, actor
    session.add(pub)
    session.add(claim)
    events.record_claim_event(
        session, claim, actor=actor, action="claim.published", entity_type="publication",
        entity_id=claim.id, changes={"url": pub.url, "headline": pub.headline,
                                     "image_url": pub.image_url, "status": status.value,
                                     "review_id": pub.review_id, "republished": republished})
    return pub


def withdraw(session: Session, *, claim: Claim, expected_version: IfMatch | None,
             actor: str) -> Publication:
    """Withdraw the claim's published verdict from everything public."""
    preconditions.check_version(claim.version, expected_version, f"claim {claim.id}")
    pub = session.get(Publication, claim.id)
    if pub is None or pub.withdrawn_at is not None:
        raise NotFound(f"claim {claim.id} has no published verdict to withdraw")
    claims.touch(claim)
    pub.withdrawn_at = claim.updated_at
    session.add(pub)
    session.add(claim)
    events.record_claim_event(
        session, claim, actor=actor, action="claim.withdrawn", entity_type="publication",
        entity_id=claim.id, changes={"url": pub.url, "status": pub.status})
    return pub


def get_published(session: Session, claim_id: str, *, gone_is_410: bool = False
                  ) -> tuple[Publication, ClaimPublic]:
    """The live publication of a claim and the claim; 404 (or 410 once withdrawn) if none."""
    pub = session.get(Publication, claim_id)
    if pub is None:
        raise NotFound(f"claim {claim_id} has no published fact-check")
    if pub.withdrawn_at is not None:
        detail = f"the fact-check of claim {claim_id} has been withdrawn"
        raise Gone(detail) if gone_is_410 else NotFound(detail)
    return pub, rendering.claim_public(session, claims.get_claim(session, claim_id))


def published_clause(published: bool = True) -> sa.ColumnElement[bool]:
    """SQL for `GET /v1/claims?published=`: the claim has a live publication (or not)."""
    live = sa.exists().where(Publication.claim_id == Claim.id,
                             col(Publication.withdrawn_at).is_(None))
    return live if published else ~live


_LIVE = col(Publication.withdrawn_at).is_(None)


def _with_claims(session: Session, pubs: Sequence[Publication]
                 ) -> list[tuple[Publication, ClaimPublic]]:
    by_id = {c.id: c for c in rendering.claims_by_id(session, [p.claim_id for p in pubs])}
    return [(p, by_id[p.claim_id]) for p in pubs if p.claim_id in by_id]


def list_published(session: Session, *, limit: int, cursor: str | None = None,
                   url: str | None = None, offset: int = 0,
                   ) -> tuple[list[tuple[Publication, ClaimPublic]], str | None]:
    """Live publications newest first (only those at `url`, if given), a page after
    `cursor` (else after skipping `offset`)."""
    query = select(Publication).where(_LIVE)
    if url is not None:
        query = query.where(Publication.url == url)
    if cursor:
        when, after_id = decode_time_cursor(cursor)
        query = query.where(after_position(col(Publication.published_at),
                                           col(Publication.claim_id), when, after_id,
                                           descending=True))
    elif offset:
        query = query.offset(offset)
    rows = session.exec(query.order_by(col(Publication.published_at).desc(),
                                       col(Publication.claim_id).desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_time_cursor(page[-1].published_at, page[-1].claim_id)
    return _with_claims(session, page), next_cursor


def iter_published(db_sessions: Any, *, chunk: int = 500
                   ) -> Iterator[tuple[Publication, ClaimPublic]]:
    """Every live publication, a chunk per short session (`db_sessions()` opens one)."""
    cursor = None
    while True:
        with db_sessions() as session:
            items, cursor = list_published(session, limit=chunk, cursor=cursor)
        yield from items
        if cursor is None:
            return


# --- Google Fact Check Tools: claims:search ---------------------------------------------

_TOKEN_SALT = b"claimledger-factcheck-page-token"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _token(modified_at: datetime, claim_id: str, query_key: str) -> str:
    body = (modified_at.isoformat(), claim_id, query_key)
    return encode_cursor(*body, _digest(_TOKEN_SALT, *body))


def _read_token(token: str, query_key: str) -> tuple[datetime, str]:
    refused = BadRequest("pageToken is not one this service issued for this query")
    try:
        when, claim_id, key, check = decode_cursor(token, length=4, types=(str,) * 4)
    except BadRequest:
        raise refused from None
    if check != _digest(_TOKEN_SALT, when, claim_id, key):
        raise refused
    if key != query_key:
        raise BadRequest("pageToken belongs to another query: send the same parameters as "
                         "for the page that returned it")
    try:
        return datetime.fromisoformat(when), claim_id
    except ValueError:
        raise refused from None


def site_matches(site_filter: str, publisher: Publisher) -> bool:
    """Whether `reviewPublisherSiteFilter` (a host such as `example.org`) names our site."""
    wanted = site_filter.strip().lower().removeprefix("www.")
    return publisher.site == wanted or publisher.site.endswith("." + wanted)


def search_published(
    session: Session, *, query: str | None, language: str | None, site_filter: str | None,
    max_age_days: int | None, page_size: int, page_token: str | None, offset: int,
    publisher: Publisher,
) -> tuple[list[tuple[Publication, ClaimPublic]], str | None]:
    """Live publications matching Google's claims:search parameters, latest review first,
    and the next page's token. `offset` is read only without a token."""
    if not query and not site_filter:
        raise BadRequest("query is required unless reviewPublisherSiteFilter is given")
    query_key = _digest(query, (language or "").lower(), (site_filter or "").lower(),
                        max_age_days)
    after = _read_token(page_token, query_key) if page_token else None
    if site_filter and not site_matches(site_filter, publisher):
        return [], None  # every review here is this publisher's
    stmt = select(Publication).join(Claim, col(Claim.id) == Publication.claim_id).where(_LIVE)
    if language:
        lang = language.lower()
        stmt = stmt.where(sa.func.lower(Claim.language).in_({lang, lang.split("-")[0]}))
    if max_age_days is not None:
        stmt = stmt.where(col(Publication.modified_at) >= utcnow() - timedelta(days=max_age_days))
    if query:
        found = search.matches(session, query)
        if found is None:
            return [], None
        stmt = stmt.where(col(Publication.claim_id).in_(sa.select(found.c.claim_id)))
    if after is not None:
        when, claim_id = after
        stmt = stmt.where(after_position(col(Publication.modified_at), col(Publication.claim_id),
                                         when, claim_id, descending=True))
    stmt = stmt.order_by(col(Publication.modified_at).desc(), col(Publication.claim_id).desc())
    if after is None and offset:
        stmt = stmt.offset(offset)
    rows = session.exec(stmt.limit(page_size + 1)).all()
    page = rows[:page_size]
    token = _token(page[-1].modified_at, page[-1].claim_id, query_key) \
        if len(rows) > page_size else None
    return _with_claims(session, page), token
