"""API keys (admin only): create (the secret is shown once), list, revoke."""

from fastapi import APIRouter, Depends

from app.api import READ_ERRORS, WRITE_ERRORS
from app.deps import AdminKey, IdempotencyDep, SessionDep, WriteSessionDep, require
from app.domain import keys
from app.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, Role

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=READ_ERRORS,
                   dependencies=[Depends(require(Role.admin))])


@router.post("", status_code=201, responses=WRITE_ERRORS)
def create_key(
    key_in: ApiKeyCreate, admin: AdminKey, idem: IdempotencyDep, session: WriteSessionDep
) -> ApiKeyCreated:
    """Create a key with one role. The `secret` in the response is never shown again.

    With an Idempotency-Key, a replay returns only the key's public fields: the secret
    is never stored.
    """
    created = keys.create_key(session, name=key_in.name, role=key_in.role, actor=admin.name)
    idem.save(session, status=201,
              body=ApiKeyPublic.model_validate(created).model_dump(mode="json") | {"secret": ""})
    session.commit()
    return created


@router.get("")
def list_keys(session: SessionDep, include_revoked: bool = False) -> list[ApiKeyPublic]:
    """Keys without their secrets."""
    return [ApiKeyPublic.model_validate(k)
            for k in keys.list_keys(session, include_revoked=include_revoked)]


@router.delete("/{key_id}", status_code=204, responses=WRITE_ERRORS)
def revoke_key(key_id: str, admin: AdminKey, session: WriteSessionDep) -> None:
    """Revoke a key; requests with it are refused from then on."""
    keys.revoke_key(session, key=keys.get_key(session, key_id), actor=admin.name)
    session.commit()
