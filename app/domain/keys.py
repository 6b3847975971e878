"""API key management, shared by the /v1/keys routes and the CLI."""

from sqlmodel import Session, col, select

from app.domain.auth import display_prefix, generate_secret, hash_secret
from app.domain.events import record_event
from app.errors import Conflict, NotFound
from app.models import ApiKey, ApiKeyCreated, Role, utcnow


def create_key(session: Session, *, name: str, role: Role, actor: str,
               replace: bool = False) -> ApiKeyCreated:
    """Mint a key; the secret is in the result and nowhere else, ever."""
    active = session.exec(select(ApiKey).where(ApiKey.name == name,
                                               col(ApiKey.revoked_at).is_(None))).all()
    if active and not replace:
        raise Conflict(f"an active key is already named {name!r}; names identify actors")
    for old in active:
        revoke_key(session, key=old, actor=actor)
    secret = generate_secret()
    key = ApiKey(name=name, role=role, prefix=display_prefix(secret),
                 secret_hash=hash_secret(secret), created_by=actor)
    session.add(key)
    session.flush()
    record_event(session, actor=actor, action="key.created", entity_type="api_key",
                 entity_id=key.id, changes={"name": name, "role": role})
    return ApiKeyCreated.model_validate(key, update={"secret": secret})


def get_key(session: Session, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} does not exist")
    return key


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey)
    if not include_revoked:
        query = query.where(col(ApiKey.revoked_at).is_(None))
    return list(session.exec(query.order_by(ApiKey.created_at, ApiKey.id)).all())


def revoke_key(session: Session, *, key: ApiKey, actor: str) -> None:
    if key.revoked_at is not None:
        return
    key.revoked_at = utcnow()
    session.add(key)
    record_event(session, actor=actor, action="key.revoked", entity_type="api_key",
                 entity_id=key.id, changes={"name": key.name})


def create_first_admin(session: Session, *, name: str, actor: str) -> ApiKeyCreated | None:
    """An admin key when no active admin key exists (a first start), else None."""
    admins = select(ApiKey.id).where(ApiKey.role == Role.admin, col(ApiKey.revoked_at).is_(None))
    if session.exec(admins.limit(1)).first() is not None:
        return None
    return create_key(session, name=name, role=Role.admin, actor=actor, replace=True)
