"""FastAPI glue: sessions, the caller's key and role, paging, ETags and If-Match."""

import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from app import crud, idempotency
from app.auth import hash_secret, role_allows
from app.config import Settings
from app.db import Database
from app.errors import AppError, BadRequest, Forbidden, PreconditionRequired, Unauthorized
from app.idempotency import Idempotency
from app.models import ApiKey, Claim, Role, Source


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


DatabaseDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(db: DatabaseDep) -> Iterator[Session]:
    with db.session() as session:
        yield session


def get_write_session(db: DatabaseDep) -> Iterator[Session]:
    with db.write_session() as session:
        yield session


# scope="function": the connection (and SQLite's write turn) is handed back as soon as
# the route returns, not after the response has been sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer clk_…`")


class KeyCache:
    """Recently seen keys, so a request costs no extra query; revocation shows within ttl."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}

    def get(self, db: Database, secret_hash: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._entries.get(secret_hash)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with db.session() as session:
            key = session.exec(select(ApiKey).where(ApiKey.secret_hash == secret_hash)).first()
        if key is not None and key.revoked_at is not None:
            key = None
        if self.ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[secret_hash] = (now, key)
        return key

    def forget(self) -> None:
        self._entries.clear()


def get_api_key(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`",
                           headers={"WWW-Authenticate": "Bearer"})
    key = request.app.state.key_cache.get(db, hash_secret(credentials.credentials))
    if key is None:
        raise Unauthorized("that API key is unknown or revoked",
                           headers={"WWW-Authenticate": "Bearer"})
    request.state.api_key = key
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        try:
            limiter.hit(key.id, None if db.is_sqlite else db.sessions)
        except AppError:
            request.app.state.metrics.rate_limited.inc()
            raise
    return key


def require(role: Role):
    """A dependency that hands over the caller's key if its role is `role` or higher."""

    def dependency(key: Annotated[ApiKey, Depends(get_api_key)]) -> ApiKey:
        if not role_allows(key.role, role):
            raise Forbidden(f"this needs the {role} role; your key has {key.role}")
        return key

    return dependency


ReaderKey = Annotated[ApiKey, Depends(require(Role.reader))]
IngesterKey = Annotated[ApiKey, Depends(require(Role.ingester))]
CheckerKey = Annotated[ApiKey, Depends(require(Role.checker))]
AdminKey = Annotated[ApiKey, Depends(require(Role.admin))]


# Both take the caller's key first, so a request without one is a 401 before any lookup
# (a 404 would tell strangers which ids exist).
def get_claim(_: ReaderKey, session: SessionDep, claim_id: str) -> Claim:
    return crud.get_claim(session, claim_id)


def get_source(_: ReaderKey, session: SessionDep, source_id: str) -> Source:
    return crud.get_source(session, source_id)


ClaimDep = Annotated[Claim, Depends(get_claim)]
SourceDep = Annotated[Source, Depends(get_source)]


def page_size(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, le=200, description="Page size (max 200).")] = None,
) -> int:
    return min(limit or settings.default_page_size, settings.max_page_size)


LimitDep = Annotated[int, Depends(page_size)]
CursorDep = Annotated[
    str | None, Query(max_length=1000, description="Opaque cursor from `next_cursor`.")
]

_ETAG = re.compile(r'^\s*(?:W/)?"(\d{1,18})"\s*$')


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def _parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value)
    if match is None:
        raise BadRequest(f'If-Match must be an ETag this service issued, like "3"; got {value!r}')
    return int(match.group(1))


IfMatchHeader = Annotated[
    str | None,
    Header(alias="If-Match", max_length=100,
           description="The ETag you read; the change is refused (412) if it is stale."),
]


def optional_if_match(if_match: IfMatchHeader = None) -> int | None:
    return _parse_if_match(if_match)


def required_if_match(if_match: IfMatchHeader = None) -> int:
    version = _parse_if_match(if_match)
    if version is None:
        raise PreconditionRequired(
            "send If-Match with the ETag you read, so concurrent edits cannot overwrite each other"
        )
    return version


OptionalVersion = Annotated[int | None, Depends(optional_if_match)]
RequiredVersion = Annotated[int, Depends(required_if_match)]


async def get_idempotency(
    request: Request, key: Annotated[ApiKey, Depends(get_api_key)], db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=255,
        description="Retry-safe POST: the same key and body replays the first response.")] = None,
) -> AsyncIterator[Idempotency]:
    if idempotency_key is None:
        yield Idempotency()
        return
    digest = idempotency.request_hash(request.method, request.url.path, request.url.query,
                                      await request.body())
    idem = Idempotency(db, key.id, idempotency.check_key(idempotency_key), digest,
                       pending_seconds=settings.idempotency_pending_seconds,
                       ttl_hours=settings.idempotency_ttl_hours)
    await run_in_threadpool(idem.begin)
    try:
        yield idem
    finally:
        await run_in_threadpool(idem.release)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency, scope="function")]
