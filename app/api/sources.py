"""Sources: register, look up by name or alias, edit, their claims and track record."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api import ETAG, LOCATION, READ_ERRORS, WRITE_ERRORS, with_headers
from app.deps import (
    CheckerKey,
    CursorDep,
    IdempotencyDep,
    IngesterKey,
    LimitDep,
    ReaderKey,
    RequiredVersion,
    SessionDep,
    SourceDep,
    WriteSessionDep,
    etag,
    set_etag,
)
from app.domain import listing, rendering, source_merge, sources, stats
from app.domain.pagination import Page
from app.errors import Unprocessable
from app.models import (
    ClaimPublic,
    SimilarSource,
    SourceCreate,
    SourceKind,
    SourceMergeRequest,
    SourcePublic,
    SourceUpdate,
    Stance,
    Status,
)

router = APIRouter(prefix="/v1/sources", tags=["sources"], responses=READ_ERRORS)


@router.post("", status_code=201, responses={**WRITE_ERRORS, **with_headers(201, ETAG, LOCATION)})
def create_source(
    source_in: SourceCreate, key: IngesterKey, idem: IdempotencyDep, session: WriteSessionDep,
    response: Response,
) -> SourcePublic:
    """Register a source; its name and aliases must not match another's (409)."""
    source = sources.create_source(session, source_in=source_in, actor=key.name)
    public = rendering.source_public(session, source)
    headers = {"ETag": etag(source.version), "Location": f"/v1/sources/{source.id}"}
    idem.save(session, status=201, body=public, headers=headers)
    session.commit()
    response.headers.update(headers)
    return public


@router.get("")
def list_sources(
    _: ReaderKey,
    session: SessionDep,
    limit: LimitDep,
    cursor: CursorDep = None,
    name: Annotated[str | None, Query(max_length=200,
                                      description="Exact name or alias, any case")] = None,
    prefix: Annotated[str | None, Query(max_length=200,
                                        description="Start of a name or alias")] = None,
    kind: SourceKind | None = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    similar_to: Annotated[str | None, Query(min_length=1, max_length=200, description=(
        "Likely duplicates of this name: sources whose name or an alias is alike ignoring "
        "case, accents and script (transliterated), with a few letters wrong or words in "
        "another order; best first, each with a `score` (0..1) and the name it `matched`. "
        "One page; not with `name`, `prefix` or `cursor`."))] = None,
) -> Page[SimilarSource] | Page[SourcePublic]:
    """List sources by name; `name=ISW` finds the Institute for the Study of War;
    `similar_to=Insitute for the Study of War` suggests it as a likely duplicate."""
    if similar_to is not None:
        if name is not None or prefix is not None or cursor is not None:
            raise Unprocessable("similar_to cannot be combined with name, prefix or cursor")
        found = source_merge.similar_sources(session, name=similar_to, limit=limit)
        return Page(items=[s for s in found if (kind is None or s.kind == kind)
                           and (country is None or s.country == country)], next_cursor=None)
    return sources.list_sources(session, name=name, prefix=prefix, kind=kind, country=country,
                                limit=limit, cursor=cursor)


@router.get("/{source_id}", responses=with_headers(200, ETAG))
def get_source(source: SourceDep, _: ReaderKey, session: SessionDep,
               response: Response) -> SourcePublic:
    """One source."""
    set_etag(response, source.version)
    return rendering.source_public(session, source)


@router.patch("/{source_id}", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def update_source(
    source_id: str, source_in: SourceUpdate, key: CheckerKey, version: RequiredVersion,
    session: WriteSessionDep, response: Response,
) -> SourcePublic:
    """Edit a source. Send `If-Match` with the ETag you read."""
    source = sources.get_source(session, source_id)
    sources.update_source(session, source=source, source_in=source_in, expected_version=version,
                          actor=key.name)
    public = rendering.source_public(session, source)
    session.commit()
    set_etag(response, source.version)
    return public


@router.post("/{source_id}/merge", responses={**WRITE_ERRORS, **with_headers(200, ETAG)})
def merge_source(
    source_id: str, merge_in: SourceMergeRequest, key: CheckerKey, version: RequiredVersion,
    idem: IdempotencyDep, session: WriteSessionDep, response: Response,
) -> SourcePublic:
    """Fold the duplicate source named in the body into this one, as claims merge.

    Its attributions move here (one this source already has on that claim is folded), its
    name and aliases become aliases of this one, and its id resolves to this source from
    then on (`GET /v1/sources/{duplicate_id}` answers with this one). The track record is
    whole; each claim touched records the merge in its history, and `as_of` before it shows
    the old source. Send `If-Match` with this source's ETag (428 without it, 412 if stale).
    """
    source = sources.get_source(session, source_id)
    source_merge.merge_sources(session, source=source, duplicate_id=merge_in.duplicate_id,
                               expected_version=version, actor=key.name, note=merge_in.note)
    public = rendering.source_public(session, source)
    idem.save(session, status=200, body=public, headers={"ETag": etag(source.version)})
    session.commit()
    set_etag(response, source.version)
    return public


@router.get("/{source_id}/claims")
def list_source_claims(
    source_id: str, _: ReaderKey, session: SessionDep, limit: LimitDep,
    cursor: CursorDep = None, stance: Stance | None = None,
    status: Annotated[list[Status] | None, Query(max_length=9)] = None,
) -> Page[ClaimPublic]:
    """Claims this source is attributed with, newest first; filter by stance."""
    return listing.list_source_claims(session, source_id=source_id, stance=stance,
                                      status=status, limit=limit, cursor=cursor)


@router.get("/{source_id}/record")
def get_source_record(source: SourceDep, _: ReaderKey, session: SessionDep) -> stats.SourceRecord:
    """Track record: how the claims the source asserted, disputed or reported were judged."""
    return stats.source_record(session, source)
