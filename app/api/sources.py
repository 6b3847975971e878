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
from app.domain import listing, rendering, sources, stats
from app.domain.pagination import Page
from app.models import (
    ClaimPublic,
    SourceCreate,
    SourceKind,
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
) -> Page[SourcePublic]:
    """List sources by name; `name=ISW` finds the Institute for the Study of War."""
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


@router.get("/{source_id}/claims")
def list_source_claims(
    source_id: str, _: ReaderKey, session: SessionDep, limit: LimitDep,
    cursor: CursorDep = None, stance: Stance | None = None,
    status: Annotated[list[Status] | None, Query(max_length=9)] = None,
) -> Page[ClaimPublic]:
    """Claims this source is attributed with, newest first; filter by stance."""
    listing.read_snapshot(session)  # before the source is read: the page is read with it
    source = sources.get_source(session, source_id)
    where = listing.claim_filters(source_id=source.id, stance=stance, status=status)
    return listing.list_claims(session, where=where, limit=limit, cursor=cursor)


@router.get("/{source_id}/record")
def get_source_record(source: SourceDep, _: ReaderKey, session: SessionDep) -> stats.SourceRecord:
    """Track record: how the claims the source asserted, disputed or reported were judged."""
    return stats.source_record(session, source)
