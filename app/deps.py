"""FastAPI glue: sessions, the caller's key and role, paging, ETags and If-Match."""

import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db import Database
from app.domain import claims, idempotency, sources
from app.domain.auth import hash_secret, role_allows
from app.domain.idempotency import Idempotency
from app.domain.preconditions import IF_MATCH_PATTERN, IfMatch, parse_if_match
from app.errors import (
    AppError,
    BadRequest,
    Forbidden,
    PreconditionRequired,
    Unauthorized,
    Unprocessable,
)
from app.models import ApiKey, Claim, Role, Source


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in
# the thread pool, and every such hop costs more than the work (GIL hand-overs under load).
async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


DatabaseDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def _session_from(db: Database, manager: AbstractContextManager[Session]
                        ) -> AsyncIterator[Session]:
    # Opening a session does no I/O. Closing hands its connection back with a rollback:
    # microseconds on SQLite (done here), a round trip on PostgreSQL (done in a thread).
    session = manager.__enter__()
    try:
        yield session
    except BaseException as exc:  # inline: a cancelled request must still hand it back
        if not manager.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        if db.is_sqlite:
            manager.__exit__(None, None, None)
        else:
            await run_in_threadpool(manager.__exit__, None, None, None)


async def get_session(db: DatabaseDep) -> AsyncIterator[Session]:
    async for session in _session_from(db, db.session()):
        yield session


async def get_write_session(db: DatabaseDep) -> AsyncIterator[Session]:
    async for session in _session_from(db, db.write_session()):
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

    def cached(self, secret_hash: str) -> tuple[bool, ApiKey | None]:
        """(found, key) from memory alone: no query, so callable on the event loop."""
        hit = self._entries.get(secret_hash)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    def get(self, db: Database, secret_hash: str) -> ApiKey | None:
        found, key = self.cached(secret_hash)
        if found:
            return key
        now = time.monotonic()
        with db.session() as session:
            key = session.exec(select(ApiKey).where(ApiKey.secret_hash == secret_hash)).first()
        if key is not None and key.revoked_at is not None:
            key = None
        if self.ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[secret_hash] = (now, key)
        return key


def _refuse_nul(request: Request) -> None:
    """A NUL in the path or a query parameter is a 400 on every database, as PostgreSQL
    answers it (errors.database_problem); the OpenAPI document refuses it in every request
    string but the search `q`, which takes any text (search.py keeps only words).
    Checked here, where every /v1 request passes once, rather than in a dependency of its own."""
    query = request.scope["query_string"]
    if "\x00" in request.scope["path"] or ((b"%00" in query or b"\x00" in query) and any(
            "\x00" in key + (value if key != "q" else "")
            for key, value in request.query_params.multi_items())):
        raise BadRequest("a value in the request cannot be stored or searched for (for "
                         "example, it contains a NUL byte)")


async def refuse_nul(request: Request) -> None:
    """`_refuse_nul` as a dependency, for the routes that take no key (the public ones)."""
    _refuse_nul(request)


# The dependencies every write request solves (the key, the idempotency claim) read the
# app's state themselves: each dependency FastAPI solves costs time on the event loop of a
# worker whose CPU bounds POST /v1/claims (bench P1/P2; bench/RESULTS.md, "Fewer
# dependencies").
async def _authenticate(request: Request,
                        credentials: HTTPAuthorizationCredentials | None) -> ApiKey:
    """The caller's key (from memory when recently seen, else one query in the thread
    pool), its check and its rate-limit hit, once per request however many dependencies
    ask (require() and get_idempotency both do on a POST)."""
    done: ApiKey | None = getattr(request.state, "authenticated", None)
    if done is not None:
        return done
    _refuse_nul(request)
    db: Database = request.app.state.db
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`",
                           headers={"WWW-Authenticate": "Bearer"})
    cache: KeyCache = request.app.state.key_cache
    secret_hash = hash_secret(credentials.credentials)
    found, key = cache.cached(secret_hash)
    if not found:
        key = await run_in_threadpool(cache.get, db, secret_hash)
    if key is None:
        raise Unauthorized("that API key is unknown or revoked",
                           headers={"WWW-Authenticate": "Bearer"})
    request.state.api_key = key
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        try:
            if db.is_sqlite or not limiter.share_due(key.id):
                limiter.hit(key.id)  # counted in memory
            else:
                await run_in_threadpool(limiter.hit, key.id, db.session_factory)
        except AppError:
            request.app.state.metrics.rate_limited.inc()
            raise
    request.state.authenticated = key
    return key


def require(role: Role):
    """A dependency that hands over the caller's key if its role is `role` or higher.

    It authenticates itself (`_authenticate`) rather than through a dependency of its
    own: one dependency fewer for FastAPI to solve on every request (bench P3)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        key = await _authenticate(request, credentials)
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
    return claims.get_claim(session, claim_id)


def get_source(_: ReaderKey, session: SessionDep, source_id: str) -> Source:
    return sources.get_source(session, source_id)


ClaimDep = Annotated[Claim, Depends(get_claim)]
SourceDep = Annotated[Source, Depends(get_source)]


def get_claim_for_update(session: WriteSessionDep, claim_id: str) -> Claim:
    """The claim a write route changes, locked for update in the route's write session.
    Declared last in a route, after its key, If-Match and Idempotency-Key, so that those
    are answered (401, 403, 428, a replay) before a missing claim is (404)."""
    return claims.get_claim(session, claim_id, for_update=True)


ClaimForUpdate = Annotated[Claim, Depends(get_claim_for_update)]


async def page_size(
    settings: SettingsDep,
    limit: Annotated[int | None, Query(
        ge=1, description="Page size (at most the schema's maximum: 200 unless configured).")
    ] = None,
) -> int:
    """`?limit=`, or the default page size; past the app's max_page_size it is a 422 (the
    OpenAPI document's `maximum` is set from the same setting, app/api/openapi.py)."""
    if limit is not None and limit > settings.max_page_size:
        raise Unprocessable(f"limit must be at most {settings.max_page_size}")
    return min(limit or settings.default_page_size, settings.max_page_size)


LimitDep = Annotated[int, Depends(page_size)]
CursorDep = Annotated[
    str | None, Query(max_length=1000, description="Opaque cursor from `next_cursor`.")
]


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


# The pattern is documentation only: a malformed If-Match stays a 400 (problem+json), not 422.
# Typed `str` with a default of None (not `str | None`): a header is never null, so the
# schema says string only, and an absent header still reaches the dependency as None.
IfMatchHeader = Annotated[
    str,
    Header(alias="If-Match", max_length=1000, json_schema_extra={"pattern": IF_MATCH_PATTERN},
           description='The ETag you read (or a list of them, or `*`); the change is refused '
                       '(412) if none is current. W/ tags never match.'),
]


def _if_match(request: Request) -> IfMatch | None:
    # Several If-Match lines make one list (RFC 9110 §5.3).
    values = request.headers.getlist("if-match")
    return parse_if_match(", ".join(values)) if values else None


async def optional_if_match(request: Request, if_match: IfMatchHeader = None) -> IfMatch | None:
    return _if_match(request)


async def required_if_match(request: Request, if_match: IfMatchHeader = None) -> IfMatch:
    """The If-Match condition; without one, 428. OpenAPI lists the header as required
    (main._openapi): the default of None is only there so a missing header is a 428, not 422."""
    condition = _if_match(request)
    if condition is None:
        raise PreconditionRequired(
            "send If-Match with the ETag you read, so concurrent edits cannot overwrite each other"
        )
    return condition


OptionalVersion = Annotated[IfMatch | None, Depends(optional_if_match)]
RequiredVersion = Annotated[IfMatch, Depends(required_if_match)]


async def get_idempotency(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=255,
        description="Retry-safe POST: the same key and body replays the first response.")] = None,
) -> AsyncIterator[Idempotency]:
    # The key itself rather than through a dependency: one fewer on every POST (the
    # route's role check has authenticated it already; _authenticate remembers it).
    key = await _authenticate(request, credentials)
    if idempotency_key is None:
        yield Idempotency()
        return
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    digest = idempotency.request_hash(request.method, request.url.path, request.url.query,
                                      await request.body(),
                                      request.headers.get("content-type", ""))
    idem = Idempotency.configured(db, settings, key.id, idempotency.check_key(idempotency_key),
                                  digest, getattr(request.app.state, "heartbeat", None))
    await run_in_threadpool(idem.begin)
    try:
        yield idem
    finally:
        await run_in_threadpool(idem.release)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency, scope="function")]
