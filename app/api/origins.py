"""Origins (admin only): the ingest feeds, which key each belongs to, and handing one over."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from app.api import READ_ERRORS, WRITE_ERRORS
from app.deps import AdminKey, CursorDep, LimitDep, SessionDep, WriteSessionDep, require
from app.domain import origins
from app.domain.pagination import Page
from app.models import OriginOwnerUpdate, OriginPublic, Role

router = APIRouter(prefix="/v1/origins", tags=["origins"], responses=READ_ERRORS,
                   dependencies=[Depends(require(Role.admin))])

# `:path`: an origin is any name (up to 200 characters), slashes included.
OriginPath = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("")
def list_origins(session: SessionDep, limit: LimitDep, cursor: CursorDep = None
                 ) -> Page[OriginPublic]:
    """Every origin (ingest feed) with its claim count and the key that owns it.

    The first key to ingest with an origin owns it; other ingester and checker keys get a
    per-item 403 for adding claims to it or updating its claims. Admin keys may update any.
    """
    return origins.list_origins(session, limit=limit, cursor=cursor)


@router.put("/{origin:path}/owner", responses=WRITE_ERRORS)
def set_origin_owner(
    origin: OriginPath, owner_in: OriginOwnerUpdate, admin: AdminKey, session: WriteSessionDep,
) -> OriginPublic:
    """Hand an origin over to another key (not a reader key, not revoked); the event names
    the admin who did."""
    public = origins.set_owner(session, origin=origin, key_id=owner_in.key_id, actor=admin.name)
    session.commit()
    return public
