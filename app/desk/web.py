"""The desk's plumbing: templates, the signed-in person, the route class that turns problems
into pages, and what every page and form post checks first (the key cookie, the CSRF token,
the same-origin check)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.config import Settings
from app.db import Database
from app.deps import KeyCache
from app.desk import security
from app.domain.auth import hash_secret, role_allows
from app.errors import AppError, Forbidden, database_problem
from app.models import ApiKey, Role, Status

HERE = Path(__file__).parent
STATIC_PATH = "/desk/static"
STREAM_PATH = "/desk/events"
PAGE = 25

templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))

STATUS_LABELS = {
    Status.unverified: "Unverified", Status.in_review: "In review", Status.true: "True",
    Status.mostly_true: "Mostly true", Status.mixed: "Mixed",
    Status.mostly_false: "Mostly false", Status.false: "False",
    Status.misleading: "Misleading", Status.unverifiable: "Unverifiable",
}


def _when(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


templates.filters["when"] = _when
templates.globals.update(status_labels=STATUS_LABELS, static=STATIC_PATH,
                         stream_path=STREAM_PATH)


class SignedOut(Exception):
    """No valid key: the sign-in page, with `message` (an expired or revoked key)."""

    def __init__(self, message: str = ""):
        self.message = message


class Refused(Exception):
    """A form post that fails the CSRF or same-origin check."""


@dataclass
class Desk:
    """The signed-in person (their key) and what a page needs to know about them."""

    request: Request
    key: ApiKey
    secret: str
    csrf: str = field(init=False)

    def __post_init__(self) -> None:
        self.csrf = security.csrf_token(self.secret)

    def can(self, role: str) -> bool:
        return role_allows(self.key.role, Role(role))

    @property
    def db(self) -> Database:
        return self.request.app.state.db

    @property
    def settings(self) -> Settings:
        return self.request.app.state.settings


class DeskRoute(APIRoute):
    """Desk pages get the security headers, and problems come back as pages, not JSON."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignedOut as out:
                response = redirect("/sign-in?expired=1" if out.message else "/sign-in")
                security.clear_key_cookie(response)
            except Refused:
                response = error_page(request, 403, "Refused", "This form did not come from "
                                      "a desk page of this site (the check against forged "
                                      "cross-site posts failed). Reload the page and try again.")
            except RequestValidationError:
                response = error_page(request, 400, "Bad request",
                                      "Part of this address is not valid.")
            except AppError as exc:
                response = error_page(request, exc.status, exc.title, exc.detail)
            except Exception as exc:
                # What the database refuses (a NUL in a filter on PostgreSQL) or a busy
                # database: told as the API tells it, on a page.
                problem = database_problem(exc)
                if problem is None:
                    raise
                response = error_page(request, problem.status, problem.title, problem.detail)
            response.headers.update(security.HEADERS)
            return response

        return route


def desk_router() -> APIRouter:
    """A router for desk pages: DeskRoute, and nothing in the API's OpenAPI document."""
    return APIRouter(route_class=DeskRoute, include_in_schema=False)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = templates.get_template(template).render(request=request, path=request.url.path,
                                                   **context)
    return HTMLResponse(body, status_code=status)


def error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", status=status, title=title, detail=detail, desk=None)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


EXPIRED = "Your key is no longer valid (revoked or unknown); sign in again."


def key_of(request: Request, secret: str) -> ApiKey | None:
    """The key with this secret, looked up as the API looks up a bearer key."""
    cache: KeyCache = request.app.state.key_cache
    return cache.get(request.app.state.db, hash_secret(secret))


async def signed_in(request: Request, role: str = "reader") -> Desk:
    """The signed-in key, checked as the API checks a bearer key; SignedOut otherwise."""
    secret = request.cookies.get(security.COOKIE)
    if not secret:
        raise SignedOut()
    key = await run_in_threadpool(key_of, request, secret)
    if key is None:
        raise SignedOut(EXPIRED)
    desk = Desk(request, key, secret)
    if not desk.can(role):
        raise Forbidden(f"this needs the {role} role; your key has {key.role}")
    return desk


async def posted(request: Request, role: str) -> tuple[Desk, FormData]:
    """A form post: same origin, signed in with `role`, carrying the right CSRF token."""
    if not security.same_origin(request):
        raise Refused()
    desk = await signed_in(request, role)
    form = await request.form()
    sent = form.get(security.CSRF_FIELD)
    if not security.csrf_ok(desk.secret, sent if isinstance(sent, str) else None):
        raise Refused()
    return desk, form


async def fetched(request: Request, role: str) -> Desk:
    """A script's post (the import's batches): same origin, signed in with `role`, the CSRF
    token in its header."""
    if not security.same_origin(request):
        raise Refused()
    desk = await signed_in(request, role)
    if not security.csrf_ok(desk.secret, request.headers.get(security.CSRF_HEADER)):
        raise Refused()
    return desk
