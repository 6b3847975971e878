"""Claims: register, list, read (now or as of a past moment), edit, delete, review, link, merge."""

from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api import ETAG, LOCATION, READ_ERRORS, WRITE_ERRORS, with_headers
from app.db import Database
from app.deps import (
    AdminKey,
    CheckerKey,
    ClaimDep,
    ClaimForUpdate,
    CursorDep,
    IdempotencyDep,
    IngesterKey,
    LimitDep,
    OptionalVersion,
    ReaderKey,
    RequiredVersion,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
    etag,
    set_etag,
)
from app.domain import (
    assignment,
    claims,
    events,
    links,
    listing,
    publishing,
    rendering,
    reviews,
    similarity,
    sources,
)
from app.domain.origins import check_claim as check_origin
from app.domain.origins import may_use as may_use_origin
from app.domain.pagination import Page, decode_position, encode_cursor, page_json
from app.fastpath.writer import GroupCommit
from app.models import (
    ApiKey,
    AssigneeUpdate,
    AttributionCreate,
    AttributionPublic,
    ClaimCreate,
    ClaimCreated,
    ClaimPublic,
    ClaimUpdate,
    EventPublic,
    InputTime,
    LinkCreate,
    LinkPublic,
    MergeRequest,
    ReviewCreate,
    ReviewPublic,
    SimilarClaim,
    Stance,
    Status,
    to_utc,
)

router = APIRouter(prefix="/v1/claims", tags=["claims"], responses=READ_ERRORS)

Time = Annotated[InputTime | None, Query(description="RFC 3339 time with offset")]
Sort = Literal["relevance", "-created_at", "created_at", "-updated_at", "updated_at"]


def claim_filters(
    status: Annotated[list[Status] | None, Query(max_length=9)] = None,
    source_id: Annotated[str | None, Query(max_length=100)] = None,
    stance: Stance | None = None,
    topic: Annotated[str | None, Query(max_length=64)] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    contested: bool | None = None,
    origin: Annotated[str | None, Query(max_length=200)] = None,
    created_after: Time = None,
    created_before: Time = None,
    updated_after: Time = None,
    updated_before: Time = None,
    include_merged: bool = False,
    assignee: Annotated[str | None, Query(max_length=200, description=(
        "Claims assigned to this checker (a key's name)."))] = None,
    published: Annotated[bool | None, Query(description=(
        "Only claims whose verdict is published (true) or not published (false)"))] = None,
) -> list[sa.ColumnElement[bool]]:
    """The filters of a claims listing, as `GET /v1/claims` and `GET /v1/claims.csv` take them."""
    where = listing.claim_filters(
        status=status, source_id=source_id, stance=stance, topic=topic, language=language,
        contested=contested, origin=origin, created_after=to_utc(created_after),
        created_before=to_utc(created_before), updated_after=to_utc(updated_after),
        updated_before=to_utc(updated_before), include_merged=include_merged,
    )
    if assignee is not None:
        where.append(assignment.assignee_filter(assignee))
    if published is not None:
        where.append(publishing.published_clause(published))
    return where


ClaimFilters = Annotated[list[sa.ColumnElement[bool]], Depends(claim_filters)]


@router.post("", status_code=201, responses={**WRITE_ERRORS, **with_headers(201, ETAG, LOCATION)},
             response_model=ClaimCreated)
async def create_claim(
    claim_in: ClaimCreate, key: IngesterKey, idem: IdempotencyDep, request: Request,
) -> Response:
    """Register a claim (`unverified`), optionally with attributions naming sources.

    `likely_duplicates` lists existing claims with the same or nearly the same words.
    Concurrent requests are committed together (app/fastpath/writer.py); each is answered once
    its claim is committed.
    """
    if claim_in.origin is not None:  # its feed may belong to another key (403)
        await run_in_threadpool(_check_origin, request.app.state.db, claim_in, key)
    # Rendered by the writer: FastAPI would validate the built model all over again first.
    group_commit: GroupCommit = request.app.state.group_commit
    written = await group_commit.create(claim_in, actor=key.name, idem=idem)
    return Response(written.body, status_code=201, media_type="application/json",
                    headers=written.headers)


def _check_origin(db: Database, claim_in: ClaimCreate, key: ApiKey) -> None:
    """check_origin in a transaction of its own, committed before the claim is written (an
    origin no key owns becomes this key's); one read when the key already owns it."""
    with db.session() as session:
        if may_use_origin(session, claim_in.origin, key=key):
            return
    with db.write_session() as session:
        check_origin(session, claim_in, key=key)
        session.commit()


@router.get("", response_model=Page[ClaimPublic])
async def list_claims(
    _: ReaderKey,
    request: Request,
    limit: LimitDep,
    where: ClaimFilters,
    cursor: CursorDep = None,
    q: Annotated[str | None, Query(max_length=1000, description=(
        "Full-text search over claim text, quotes and source names; every word must match."
    ))] = None,
    sort: Annotated[Sort | None, Query(description=(
        "Default: relevance when searching (`q`), else newest first (`-created_at`)."
    ))] = None,
) -> Response:
    """List or search claims with filters; follow `next_cursor` for the next page."""
    db, cache = request.app.state.db, request.app.state.claim_cache

    def find() -> bytes:
        with db.session() as session:
            page = listing.list_claims(session, where=where, sort=sort, limit=limit, cursor=cursor,
                                       q=q, render=cache.render)
        # Items are the claims' JSON, reused from the render cache while current (as for
        # GET /v1/claims/{claim_id}); FastAPI's own pass would validate them all again.
        return page_json(page.items, page.next_cursor)

    return Response(await run_in_threadpool(find), media_type="application/json")


# Not with as_of: a past state has no version to send If-Match with.
@router.get("/{claim_id}", response_model=ClaimPublic,
            responses=with_headers(200, ETAG, required=False))
async def get_claim(
    claim_id: str, _: ReaderKey, request: Request, as_of: Time = None
) -> Response:
    """One claim with its attributions, sources, links and current review; `as_of` for the past."""
    db, cache = request.app.state.db, request.app.state.claim_cache
    if as_of is not None:
        def past() -> bytes:
            with db.session() as session:
                public = events.claim_as_of(session, claim_id=claim_id, as_of=to_utc(as_of))
            return public.__pydantic_serializer__.to_json(public)
        return Response(await run_in_threadpool(past), media_type="application/json")
    hit = cache.current(claim_id)  # SQLite: checked right here, no thread hop
    body, version = hit or await run_in_threadpool(cache.get, claim_id)
    return Response(body, media_type="application/json", headers={"ETag": etag(version)})


@router.get("/{claim_id}/similar")
def list_similar_claims(
    claim: ClaimDep, _: ReaderKey, session: SessionDep, settings: SettingsDep,
    threshold: Annotated[float | None, Query(ge=0.05, le=1.0, description=(
        "Minimum word-overlap score (Jaccard), default from settings.")
    )] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[SimilarClaim]:
    """Likely duplicates of this claim, best first, with a score from 0 to 1."""
    return similarity.likely_duplicates(
        session, claim.text, threshold=threshold or settings.similarity_threshold,
        limit=limit, exclude=[claim.id])


@router.patch("/{claim_id}", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def update_claim(
    claim_in: ClaimUpdate, key: CheckerKey, version: RequiredVersion, session: WriteSessionDep,
    response: Response, claim: ClaimForUpdate,
) -> ClaimPublic:
    """Edit a claim. Send `If-Match` with the ETag you read; a stale one is refused (412).

    Changing the text of a claim with a verdict puts it back to `in_review` (a review and an
    event say the text changed): the verdict was given for the old text."""
    public = claims.update_claim(session, claim=claim, claim_in=claim_in,
                                 expected_version=version, actor=key.name)
    session.commit()
    set_etag(response, public.version)
    return public


@router.put("/{claim_id}/assignee", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def assign_claim(
    claim_id: str,  # ClaimForUpdate's; named first so the document lists it first
    assignee_in: AssigneeUpdate, key: CheckerKey, version: RequiredVersion,
    session: WriteSessionDep, response: Response, claim: ClaimForUpdate,
) -> ClaimPublic:
    """Assign the claim to a checker (a key's name), or to nobody with `null`; If-Match needed.

    The change is an event (`claim.assigned`) in the claim's history and the live feed.
    """
    assignment.assign_claim(session, claim=claim, assignee=assignee_in.assignee,
                            expected_version=version, actor=key.name)
    public = rendering.claim_public(session, claim)
    session.commit()
    set_etag(response, claim.version)
    return public


@router.delete("/{claim_id}", status_code=204, responses=WRITE_ERRORS)
def delete_claim(
    key: AdminKey, version: RequiredVersion, session: WriteSessionDep, claim: ClaimForUpdate,
) -> None:
    """Delete a claim; a tombstone event keeps its last state for the feed and history.

    Send `If-Match` with the ETag you read (428 without it, 412 if the claim changed since)."""
    claims.delete_claim(session, claim=claim, expected_version=version, actor=key.name)
    session.commit()


@router.post("/{claim_id}/attributions", status_code=201, responses=WRITE_ERRORS)
def create_attribution(
    att_in: AttributionCreate, key: IngesterKey, version: OptionalVersion,
    idem: IdempotencyDep, session: WriteSessionDep, claim: ClaimForUpdate,
) -> AttributionPublic:
    """Attach a source (by id, or by name or alias) with its stance and citation."""
    attribution = claims.add_attribution(session, claim=claim, att_in=att_in,
                                         expected_version=version, actor=key.name)
    source = sources.get_source(session, attribution.source_id)
    public = AttributionPublic.model_validate(attribution,
                                              update={"source": rendering.source_ref(source)})
    idem.save(session, status=201, body=public)
    session.commit()
    return public


@router.delete("/{claim_id}/attributions/{attribution_id}", status_code=204,
               responses=WRITE_ERRORS)
def delete_attribution(
    claim_id: str,  # ClaimForUpdate's; named first so the document lists it first
    attribution_id: str, key: CheckerKey, version: RequiredVersion, session: WriteSessionDep,
    claim: ClaimForUpdate,
) -> None:
    """Detach a source from a claim. Send `If-Match` with the claim's ETag (428 without it,
    412 if stale)."""
    claims.delete_attribution(session, claim=claim, attribution_id=attribution_id,
                              expected_version=version, actor=key.name)
    session.commit()


@router.post("/{claim_id}/reviews", status_code=201, responses=WRITE_ERRORS)
def create_review(
    review_in: ReviewCreate, key: CheckerKey, version: RequiredVersion,
    idem: IdempotencyDep, session: WriteSessionDep, claim: ClaimForUpdate,
) -> ReviewPublic:
    """Set the claim's status; verdicts need a rationale. Appends to the review history.

    Send `If-Match` with the ETag you read: without it 428, and if another checker changed
    the claim first 412, so two verdicts set at once never silently overwrite each other.
    A verdict stands on the text it was given for: when the text changes later (an edit, or
    an ingest update of the claim's feed item), the claim goes back to `in_review` with a
    review and an event saying so."""
    review = reviews.create_review(session, claim=claim, review_in=review_in,
                                   expected_version=version, reviewer=key.name)
    public = ReviewPublic.model_validate(review)
    idem.save(session, status=201, body=public)
    session.commit()
    return public


@router.get("/{claim_id}/reviews")
def list_reviews(claim: ClaimDep, _: ReaderKey, session: SessionDep) -> list[ReviewPublic]:
    """Every review of the claim, oldest first."""
    return [ReviewPublic.model_validate(r) for r in reviews.reviews_of(session, claim.id)]


@router.get("/{claim_id}/history")
def claim_history(
    claim_id: str, _: ReaderKey, session: SessionDep, limit: LimitDep, cursor: CursorDep = None
) -> Page[EventPublic]:
    """The whole story of a claim in order: created, edited, attributed, reviewed, linked…"""
    after = decode_position(cursor)
    found = events.list_events(session, after=after, limit=limit + 1, claim_id=claim_id)
    if not found and after == 0:
        claims.get_claim(session, claim_id)
    page = found[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(found) > limit else None
    return Page(items=[EventPublic.model_validate(e) for e in page], next_cursor=next_cursor)


@router.post("/{claim_id}/links", status_code=201, responses=WRITE_ERRORS)
def create_link(
    link_in: LinkCreate, key: CheckerKey, version: RequiredVersion,
    idem: IdempotencyDep, session: WriteSessionDep, claim: ClaimForUpdate,
) -> LinkPublic:
    """Relate this claim to another: supports, contradicts, duplicates, updates, related.

    Send `If-Match` with this claim's ETag (428 without it, 412 if stale)."""
    link = links.create_link(session, claim=claim, link_in=link_in, expected_version=version,
                             actor=key.name)
    public = LinkPublic.model_validate(link)
    idem.save(session, status=201, body=public)
    session.commit()
    return public


@router.post("/{claim_id}/merge", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def merge_claim(
    merge_in: MergeRequest, key: CheckerKey, version: RequiredVersion,
    idem: IdempotencyDep, session: WriteSessionDep, response: Response, claim: ClaimForUpdate,
) -> ClaimPublic:
    """Fold the duplicate named in the body into this claim; the duplicate points here after.

    Send `If-Match` with this claim's ETag (428 without it, 412 if stale)."""
    public = links.merge_claims(session, claim=claim, duplicate_id=merge_in.duplicate_id,
                                expected_version=version, actor=key.name, note=merge_in.note)
    idem.save(session, status=200, body=public, headers={"ETag": etag(public.version)})
    session.commit()
    set_etag(response, public.version)
    return public
