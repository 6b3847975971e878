"""Claims: register, list, read (now or as of a past moment), edit, delete, review, link, merge."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api import ETAG, LOCATION, READ_ERRORS, WRITE_ERRORS, with_headers
from app.deps import (
    AdminKey,
    CheckerKey,
    ClaimDep,
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
    claim_cache,
    claim_writer,
    etag,
    set_etag,
)
from app.domain import claims, events, links, listing, rendering, reviews, similarity, sources
from app.domain import reviews as verification
from app.domain.pagination import Page, decode_position, encode_cursor, page_json
from app.models import (
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
    # Rendered by the writer: FastAPI would validate the built model all over again first.
    written = await claim_writer(request.app.state).create(claim_in, actor=key.name, idem=idem)
    return Response(written.body, status_code=201, media_type="application/json",
                    headers=written.headers)


@router.get("", response_model=Page[ClaimPublic])
async def list_claims(
    _: ReaderKey,
    request: Request,
    limit: LimitDep,
    cursor: CursorDep = None,
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
    q: Annotated[str | None, Query(max_length=1000, description=(
        "Full-text search over claim text, quotes and source names; every word must match."
    ))] = None,
    sort: Annotated[Sort | None, Query(description=(
        "Default: relevance when searching (`q`), else newest first (`-created_at`)."
    ))] = None,
) -> Response:
    """List or search claims with filters; follow `next_cursor` for the next page."""
    where = listing.claim_filters(
        status=status, source_id=source_id, stance=stance, topic=topic, language=language,
        contested=contested, origin=origin, created_after=to_utc(created_after),
        created_before=to_utc(created_before), updated_after=to_utc(updated_after),
        updated_before=to_utc(updated_before), include_merged=include_merged,
    )
    filtered = len(where) > len(listing.claim_filters(include_merged=include_merged))
    db, cache = request.app.state.db, claim_cache(request.app.state)

    def find() -> bytes:
        with db.session() as session:
            page = listing.list_claims(session, where=where, sort=sort, limit=limit, cursor=cursor,
                                       q=q, filtered=filtered, render=cache.render)
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
    db, cache = request.app.state.db, claim_cache(request.app.state)
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
    claim_id: str, claim_in: ClaimUpdate, key: CheckerKey, version: RequiredVersion,
    session: WriteSessionDep, response: Response,
) -> ClaimPublic:
    """Edit a claim. Send `If-Match` with the ETag you read; a stale one is refused (412)."""
    claim = claims.get_claim(session, claim_id, for_update=True)
    claims.update_claim(session, claim=claim, claim_in=claim_in, expected_version=version,
                        actor=key.name)
    public = rendering.claim_public(session, claim)
    session.commit()
    set_etag(response, claim.version)
    return public


@router.delete("/{claim_id}", status_code=204, responses=WRITE_ERRORS)
def delete_claim(
    claim_id: str, key: AdminKey, version: OptionalVersion, session: WriteSessionDep
) -> None:
    """Delete a claim; a tombstone event keeps its last state for the feed and history."""
    claim = claims.get_claim(session, claim_id, for_update=True)
    claims.delete_claim(session, claim=claim, expected_version=version, actor=key.name)
    session.commit()


@router.post("/{claim_id}/attributions", status_code=201, responses=WRITE_ERRORS)
def create_attribution(
    claim_id: str, att_in: AttributionCreate, key: IngesterKey, version: OptionalVersion,
    idem: IdempotencyDep, session: WriteSessionDep,
) -> AttributionPublic:
    """Attach a source (by id, or by name or alias) with its stance and citation."""
    claim = claims.get_claim(session, claim_id, for_update=True)
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
    claim_id: str, attribution_id: str, key: CheckerKey, version: OptionalVersion,
    session: WriteSessionDep,
) -> None:
    """Detach a source from a claim."""
    claim = claims.get_claim(session, claim_id, for_update=True)
    claims.delete_attribution(session, claim=claim, attribution_id=attribution_id,
                              expected_version=version, actor=key.name)
    session.commit()


@router.post("/{claim_id}/reviews", status_code=201, responses=WRITE_ERRORS)
def create_review(
    claim_id: str, review_in: ReviewCreate, key: CheckerKey, version: OptionalVersion,
    idem: IdempotencyDep, session: WriteSessionDep,
) -> ReviewPublic:
    """Set the claim's status; verdicts need a rationale. Appends to the review history."""
    claim = claims.get_claim(session, claim_id, for_update=True)
    review = verification.set_status(session, claim=claim, review_in=review_in,
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
    claim_id: str, link_in: LinkCreate, key: CheckerKey, version: OptionalVersion,
    idem: IdempotencyDep, session: WriteSessionDep,
) -> LinkPublic:
    """Relate this claim to another: supports, contradicts, duplicates, updates, related."""
    claim = claims.get_claim(session, claim_id, for_update=True)
    link = links.create_link(session, claim=claim, link_in=link_in, expected_version=version,
                             actor=key.name)
    public = LinkPublic.model_validate(link)
    idem.save(session, status=201, body=public)
    session.commit()
    return public


@router.post("/{claim_id}/merge", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def merge_claim(
    claim_id: str, merge_in: MergeRequest, key: CheckerKey, version: OptionalVersion,
    idem: IdempotencyDep, session: WriteSessionDep, response: Response,
) -> ClaimPublic:
    """Fold the duplicate named in the body into this claim; the duplicate points here after."""
    claim = claims.get_claim(session, claim_id, for_update=True)
    links.merge_claims(session, claim=claim, duplicate_id=merge_in.duplicate_id,
                       expected_version=version, actor=key.name, note=merge_in.note)
    public = rendering.claim_public(session, claim)
    idem.save(session, status=200, body=public, headers={"ETag": etag(claim.version)})
    session.commit()
    set_etag(response, claim.version)
    return public
