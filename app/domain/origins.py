"""Origin ownership: an ingest feed (`origin`) belongs to the key that first ingested with it
(or the one an admin hands it to). Other keys (but admins) get a per-item 403 for adding
claims to it or updating its claims; each refused update is an event in the claim's history.
"""

from collections.abc import Iterable

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.domain.events import record_event
from app.domain.pagination import Page, decode_cursor, encode_cursor
from app.errors import AppError, Forbidden, NotFound, Unprocessable
from app.models import (
    ApiKey,
    Claim,
    ClaimCreate,
    OriginOwner,
    OriginPublic,
    Role,
    utcnow,
)

# Event ids of origins are cut to the column's width; the changes carry the whole origin.
_ENTITY_ID_LENGTH = 100


def owners_of(session: Session, origins: Iterable[str]) -> dict[str, OriginOwner]:
    wanted = sorted(set(origins))
    out: dict[str, OriginOwner] = {}
    for start in range(0, len(wanted), 500):
        out.update({o.origin: o for o in session.exec(select(OriginOwner).where(
            col(OriginOwner.origin).in_(wanted[start:start + 500])))})
    return out


def _record(session: Session, *, origin: str, actor: str, action: str,
            changes: dict) -> None:
    record_event(session, actor=actor, action=action, entity_type="origin",
                 entity_id=origin[:_ENTITY_ID_LENGTH], changes={"origin": origin, **changes})


def _may_use(session: Session, owner: OriginOwner, key: ApiKey) -> bool:
    """The owner, or an admin; a key that replaced a revoked owner under the same name
    (`claimledger keys create --name … ` again) inherits the origin."""
    if owner.key_id == key.id or key.role == Role.admin:
        return True
    held_by = session.get(ApiKey, owner.key_id)
    if held_by is not None and held_by.revoked_at is not None and held_by.name == key.name:
        _record(session, origin=owner.origin, actor=key.name, action="origin.owner_set",
                changes={"from": owner.key_id, "to": key.id,
                         "reason": "the owner key was replaced by a key of the same name"})
        owner.key_id, owner.granted_by, owner.granted_at = key.id, key.name, utcnow()
        session.add(owner)
        return True
    return False


def may_use(session: Session, origin: str | None, *, key: ApiKey) -> bool:
    """Whether an owned origin is the key's (or the key an admin's), read without writing;
    False when nobody owns it yet."""
    if origin is None:
        return True
    owner = session.get(OriginOwner, origin)
    return owner is not None and (owner.key_id == key.id or key.role == Role.admin)


def refusal(owner: OriginOwner, owner_name: str | None, origin: str) -> Forbidden:
    return Forbidden(
        f"origin {origin!r} belongs to the key {owner_name or '?'} ({owner.key_id}); only it "
        "(or an admin) may add claims to it or update them. An admin can hand it over with "
        "PUT /v1/origins/{origin}/owner", origin=origin, owner_key_id=owner.key_id)


def check_batch(session: Session, claims: dict[int, ClaimCreate], *, key: ApiKey
                ) -> dict[int, AppError]:
    """The items of a batch whose origin belongs to another key (403), taken out of `claims`;
    origins no key owns yet become `key`'s. A refused update of a stored claim is recorded
    in that claim's history."""
    origins = {c.origin for c in claims.values() if c.origin is not None}
    if not origins:
        return {}
    owners = owners_of(session, origins)
    refused: dict[int, AppError] = {}
    allowed: dict[str, bool] = {}
    for index, claim_in in list(claims.items()):
        origin = claim_in.origin
        if origin is None:
            continue
        owner = owners.get(origin)
        if owner is None:
            owner = owners[origin] = OriginOwner(origin=origin, key_id=key.id,
                                                 granted_by=key.name)
            session.add(owner)
            _record(session, origin=origin, actor=key.name, action="origin.claimed",
                    changes={"owner_key_id": key.id, "reason": "first key to ingest with it"})
        if origin not in allowed:
            allowed[origin] = _may_use(session, owner, key)
        if not allowed[origin]:
            owner_key = session.get(ApiKey, owner.key_id)
            refused[index] = refusal(owner, owner_key.name if owner_key else None, origin)
            refused[index].extra["external_id"] = claim_in.external_id
            del claims[index]
    if refused:
        _record_refused_updates(session, refused, key=key)
    return refused


def _record_refused_updates(session: Session, refused: dict[int, AppError], *,
                            key: ApiKey) -> None:
    """A refused item naming a stored claim (same origin + external_id) leaves an event in
    that claim's history: who tried, and why it was refused."""
    wanted = {(e.extra["origin"], e.extra["external_id"]): e for e in refused.values()}
    external_ids = sorted({external for _, external in wanted})
    for start in range(0, len(external_ids), 500):
        for origin, external, claim_id in session.exec(
                select(Claim.origin, Claim.external_id, Claim.id).where(
                    col(Claim.external_id).in_(external_ids[start:start + 500]))):
            error = wanted.get((origin, external))
            if error is not None:
                record_event(session, actor=key.name, action="claim.update_refused",
                             entity_type="claim", entity_id=claim_id, claim_id=claim_id,
                             changes={"reason": error.detail, "status": 403,
                                      "via": "ingest"})


def check_claim(session: Session, claim_in: ClaimCreate, *, key: ApiKey) -> None:
    """For one new claim (POST /v1/claims): 403 if its origin belongs to another key; an
    origin no key owns yet becomes `key`'s."""
    if claim_in.origin is None:
        return
    error = check_batch(session, {0: claim_in}, key=key).get(0)
    if error is not None:
        raise error


def list_origins(session: Session, *, limit: int, cursor: str | None = None
                 ) -> Page[OriginPublic]:
    """Every origin claims were ingested under or that has an owner, by name."""
    used = select(Claim.origin.label("origin"), sa.func.count().label("claims")).where(
        col(Claim.origin).is_not(None)).group_by(Claim.origin).subquery()
    names = sa.union(select(used.c.origin), select(OriginOwner.origin)).subquery()
    query = (sa.select(names.c.origin, used.c.claims, OriginOwner, ApiKey.name)
             .select_from(names)
             .outerjoin(used, used.c.origin == names.c.origin)
             .outerjoin(OriginOwner, OriginOwner.origin == names.c.origin)
             .outerjoin(ApiKey, ApiKey.id == OriginOwner.key_id))
    if cursor:
        (after,) = decode_cursor(cursor, length=1, types=(str,))
        query = query.where(names.c.origin > after)
    rows = session.execute(query.order_by(names.c.origin).limit(limit + 1)).all()
    items = [OriginPublic(origin=origin, claims=claims or 0,
                          owner_key_id=owner.key_id if owner else None, owner_name=name,
                          granted_by=owner.granted_by if owner else None,
                          granted_at=owner.granted_at if owner else None)
             for origin, claims, owner, name in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def get_origin(session: Session, origin: str) -> OriginPublic:
    owner = session.get(OriginOwner, origin)
    claims = session.execute(sa.select(sa.func.count()).where(Claim.origin == origin)
                             ).scalar_one()
    if owner is None and not claims:
        raise NotFound(f"origin {origin!r} has no claims and no owner")
    name = session.get(ApiKey, owner.key_id).name if owner else None  # type: ignore[union-attr]
    return OriginPublic(origin=origin, claims=claims, owner_key_id=owner.key_id if owner else None,
                        owner_name=name, granted_by=owner.granted_by if owner else None,
                        granted_at=owner.granted_at if owner else None)


def set_owner(session: Session, *, origin: str, key_id: str, actor: str) -> OriginPublic:
    """Hand an origin over to another key (an ingester, checker or admin that is not revoked);
    the event says who did."""
    key = session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        raise Unprocessable(f"API key {key_id} does not exist or is revoked")
    if key.role == Role.reader:
        raise Unprocessable(f"API key {key_id} is a reader key and cannot ingest")
    owner = session.get(OriginOwner, origin)
    before = owner.key_id if owner else None
    if owner is None:
        owner = OriginOwner(origin=origin, key_id=key.id, granted_by=actor)
    elif owner.key_id != key.id:
        owner.key_id, owner.granted_by, owner.granted_at = key.id, actor, utcnow()
    if before != key.id:
        session.add(owner)
        _record(session, origin=origin, actor=actor, action="origin.owner_set",
                changes={"from": before, "to": key.id, "reason": "handed over by an admin"})
    session.flush()
    return get_origin(session, origin)
