"""The desk's pages: sign-in, claims, my queue, a claim, sources, overview, new claim, import.

Each page calls the same domain functions as the API (app/domain/*) with the signed-in
key's name and role; forms post back here with a CSRF token and get a page back
(Post/Redirect/Get on success; on a problem, the page again with the message next to the
field and what was typed kept).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from app.api import events as api_events
from app.config import Settings
from app.db import Database
from app.deps import KeyCache
from app.desk import charts, security
from app.domain import (
    assignment,
    claims,
    events,
    feed,
    ingest,
    links,
    listing,
    rendering,
    reviews,
    similarity,
    sources,
    stats,
)
from app.domain.auth import hash_secret, role_allows
from app.domain.pagination import encode_cursor
from app.domain.preconditions import parse_if_match
from app.errors import AppError, Forbidden, PreconditionFailed, database_problem
from app.models import (
    ApiKey,
    AssigneeUpdate,
    AttributionCreate,
    ClaimCreate,
    ClaimUpdate,
    LinkCreate,
    LinkKind,
    MergeRequest,
    ReviewCreate,
    Role,
    SourceKind,
    Stance,
    Status,
)

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
SORTS = {"-created_at": "Newest first", "created_at": "Oldest first",
         "-updated_at": "Recently changed", "updated_at": "Least recently changed",
         "relevance": "Best match (with a search)"}
SAVED = {"edit": "Your changes are saved.", "verdict": "The status is recorded.",
         "source": "The source is attached.", "link": "The link is recorded.",
         "merge": "The duplicate is merged into this claim.",
         "assign": "The assignment is saved.", "created": "The claim is registered."}


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
                response = _redirect("/sign-in?expired=1" if out.message else "/sign-in")
                security.clear_key_cookie(response)
            except Refused:
                response = _error_page(request, 403, "Refused", "This form did not come from "
                                       "a desk page of this site (the check against forged "
                                       "cross-site posts failed). Reload the page and try again.")
            except RequestValidationError:
                response = _error_page(request, 400, "Bad request",
                                       "Part of this address is not valid.")
            except AppError as exc:
                response = _error_page(request, exc.status, exc.title, exc.detail)
            except Exception as exc:
                # What the database refuses (a NUL in a filter on PostgreSQL) or a busy
                # database: told as the API tells it, on a page.
                problem = database_problem(exc)
                if problem is None:
                    raise
                response = _error_page(request, problem.status, problem.title, problem.detail)
            response.headers.update(security.HEADERS)
            return response

        return route


router = APIRouter(route_class=DeskRoute, include_in_schema=False)


def install(app: FastAPI) -> None:
    """Serve the desk from `app`: its pages, its live feed and its static files."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="desk-static")


# --- plumbing -------------------------------------------------------------------


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = templates.get_template(template).render(request=request, path=request.url.path,
                                                   **context)
    return HTMLResponse(body, status_code=status)


def _error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return _render(request, "error.html", status=status, title=title, detail=detail, desk=None)


EXPIRED = "Your key is no longer valid (revoked or unknown); sign in again."


def _sign_in_page(request: Request, *, errors: dict[str, str] | None = None) -> Response:
    message = EXPIRED if request.query_params.get("expired") else ""
    return _render(request, "sign_in.html", message=message, errors=errors or {}, desk=None)


def _key_of(request: Request, secret: str) -> ApiKey | None:
    cache: KeyCache = request.app.state.key_cache
    return cache.get(request.app.state.db, hash_secret(secret))


async def signed_in(request: Request, role: str = "reader") -> Desk:
    """The signed-in key, checked as the API checks a bearer key; SignedOut otherwise."""
    secret = request.cookies.get(security.COOKIE)
    if not secret:
        raise SignedOut()
    key = await run_in_threadpool(_key_of, request, secret)
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


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _field_errors(exc: ValidationError, fields: dict[str, str]) -> dict[str, str]:
    """pydantic's errors by form field (`fields`: model field -> form field)."""
    out: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        name = next((fields[p] for p in loc if p in fields), "_form")
        message = error["msg"].removeprefix("Value error, ")
        out.setdefault(name, message)
    return out


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _words(value: str) -> list[str]:
    return [w.strip() for w in value.replace(",", " ").split() if w.strip()]


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- sign in and out --------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    """The sign-in form."""
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the key and keep it in an HttpOnly, SameSite=Strict cookie."""
    if not security.same_origin(request):
        raise Refused()
    form = await request.form()
    secret = _text(form, "api_key")
    if not secret:
        return _sign_in_page(request, errors={"api_key": "Enter your API key."})
    key = await run_in_threadpool(_key_of, request, secret)
    if key is None:
        return _sign_in_page(request, errors={
            "api_key": "That key is unknown or revoked. Check it and try again."})
    response = _redirect("/")
    security.set_key_cookie(request, response, secret)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Forget the key: the cookie is cleared."""
    if not security.same_origin(request):
        raise Refused()
    response = _redirect("/sign-in")
    security.clear_key_cookie(response)
    return response


# --- claims -----------------------------------------------------------------------


def _list_filters(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """The list's query parameters as typed, and a problem message per invalid one."""
    params = {name: request.query_params.get(name, "").strip()
              for name in ("q", "status", "source", "topic", "language", "contested",
                           "sort", "cursor")}
    errors: dict[str, str] = {}
    if params["status"] and params["status"] not in Status.__members__:
        errors["status"] = "Choose a status from the list."
    if params["contested"] not in ("", "yes", "no"):
        errors["contested"] = "Choose yes, no or either."
    if params["sort"] and params["sort"] not in SORTS:
        errors["sort"] = "Choose an order from the list."
    if len(params["q"]) > 1000:
        errors["q"] = "A search is at most 1,000 characters."
    return params, errors


@router.get("/")
async def claims_page(request: Request) -> Response:
    """Claims: search, filters, sorting, paging; live."""
    desk = await signed_in(request)
    params, errors = _list_filters(request)

    def load() -> dict[str, Any]:
        with desk.db.session() as session:
            known = sources.list_sources(session, limit=200).items
            position = feed.latest_event_id(session)
        page, problem = None, ""
        if not errors:
            where = listing.claim_filters(
                status=[params["status"]] if params["status"] else None,
                source_id=params["source"] or None, topic=params["topic"] or None,
                language=params["language"] or None,
                contested={"yes": True, "no": False}.get(params["contested"]))
            filtered = len(where) > len(listing.claim_filters())
            sort = params["sort"] or None
            if sort == "relevance" and not params["q"]:
                sort = None
            try:
                with desk.db.session() as session:
                    page = listing.list_claims(session, where=where, sort=sort, limit=PAGE,
                                            cursor=params["cursor"] or None,
                                            q=params["q"] or None, filtered=filtered)
            except AppError as exc:
                problem = exc.detail
        return {"page": page, "sources": known, "problem": problem,
                "cursor": encode_cursor(position)}

    data = await run_in_threadpool(load)
    next_url = None
    if data["page"] is not None and data["page"].next_cursor:
        query = {k: v for k, v in params.items() if v and k != "cursor"}
        next_url = "/?" + urlencode({**query, "cursor": data["page"].next_cursor})
    return _render(request, "claims.html", desk=desk, params=params, errors=errors,
                   sorts=SORTS, statuses=list(Status), next_url=next_url, **data)


@router.get("/queue")
async def queue_page(request: Request) -> Response:
    """My queue: claims waiting for a verdict, contested first, then oldest first."""
    desk = await signed_in(request)
    try:
        offset = max(0, int(request.query_params.get("offset", "0")))
    except ValueError:
        offset = 0

    def load() -> dict[str, Any]:
        with desk.db.session() as session:
            mine, _ = assignment.queue(session, assignee=desk.key.name, limit=100)
        with desk.db.session() as session:
            waiting, more = assignment.queue(session, limit=PAGE, offset=offset)
        with desk.db.session() as session:
            position = feed.latest_event_id(session)
        return {"mine": mine, "waiting": waiting, "cursor": encode_cursor(position),
                "next_url": f"/queue?offset={offset + PAGE}" if more else None}

    return _render(request, "queue.html", desk=desk, **await run_in_threadpool(load))


@router.get("/claims/new")
async def new_claim_form(request: Request) -> Response:
    """The form to register a claim (ingesters and up)."""
    desk = await signed_in(request, "ingester")
    return _render(request, "new_claim.html", desk=desk, values={}, errors={},
                   stances=list(Stance))


@router.post("/claims/new")
async def create_claim(request: Request) -> Response:
    """Register a claim, with one source if named."""
    desk, form = await posted(request, "ingester")
    values = {name: _text(form, name) for name in (
        "text", "language", "topics", "source", "stance", "quote", "citation_url")}
    body: dict[str, Any] = {"text": values["text"], "language": values["language"] or "en",
                            "topics": _words(values["topics"])}
    if values["source"]:
        att = {"source": values["source"], "stance": values["stance"] or "asserts"}
        for name in ("quote", "citation_url"):
            if values[name]:
                att[name] = values[name]
        body["attributions"] = [att]
    fields = {"text": "text", "language": "language", "topics": "topics",
              "source": "source", "stance": "stance", "quote": "quote",
              "citation_url": "citation_url", "attributions": "source"}
    try:
        claim_in = ClaimCreate.model_validate(body)
    except ValidationError as exc:
        return _render(request, "new_claim.html", desk=desk, values=values,
                       errors=_field_errors(exc, fields), stances=list(Stance))

    def write() -> str:
        with desk.db.write_session() as session:
            claim = claims.create_claim(session, claim_in=claim_in, actor=desk.key.name)
            session.commit()
            return claim.id

    try:
        claim_id = await run_in_threadpool(write)
    except AppError as exc:
        return _render(request, "new_claim.html", desk=desk, values=values,
                       errors={"_form": exc.detail}, stances=list(Stance))
    return _redirect(f"/claims/{claim_id}?saved=created")


def _claim_context(desk: Desk, claim_id: str) -> dict[str, Any]:
    """Everything the claim page shows, read in one snapshot."""
    with desk.db.session() as session:
        listing.read_snapshot(session)
        claim = rendering.claim_public(session, claims.get_claim(session, claim_id))
        claim_reviews = reviews.reviews_of(session, claim_id)
        history = events.list_events(session, claim_id=claim_id, limit=500)
        others = [link.target_id if link.claim_id == claim_id else link.claim_id
                  for link in claim.links]
        related = {c.id: c for c in rendering.claims_by_id(session, others)}
        duplicates = similarity.likely_duplicates(
            session, claim.text, threshold=desk.settings.similarity_threshold, limit=5,
            exclude=[claim_id])
        position = feed.latest_event_id(session, claim_id=claim_id)
    return {"claim": claim, "reviews": claim_reviews, "history": list(reversed(history)),
            "related": related, "duplicates": duplicates, "cursor": encode_cursor(position)}


def _claim_page(desk: Desk, claim_id: str, *, status: int = 200, forms: dict | None = None,
                conflict: dict | None = None, saved: str = "") -> HTMLResponse:
    context = _claim_context(desk, claim_id)
    return _render(desk.request, "claim.html", status=status, desk=desk, forms=forms or {},
                   conflict=conflict, saved=SAVED.get(saved, ""), statuses=list(Status),
                   stances=list(Stance), link_kinds=list(LinkKind), **context)


@router.get("/claims/{claim_id}")
async def claim_page(request: Request, claim_id: str) -> Response:
    """One claim: details, sources, reviews, history, related claims, and forms by role."""
    desk = await signed_in(request)
    saved = request.query_params.get("saved", "")
    return await run_in_threadpool(lambda: _claim_page(desk, claim_id, saved=saved))


async def _claim_form(request: Request, claim_id: str, *, role: str, form_name: str,
                      fields: dict[str, str], build: Callable[[FormData], Any],
                      apply: Callable[[Any, Any, Any, Desk], None], saved: str) -> Response:
    """One claim form: validate (`build`), apply with the version the page was read at,
    commit; on a problem, the claim page again with the message and what was typed."""
    desk, form = await posted(request, role)
    values = {name: (form.get(name) if isinstance(form.get(name), str) else "")
              for name in (*fields.values(), "version")}
    version = parse_if_match(f'"{values["version"]}"') if values["version"].isdigit() \
        else None

    def again(_status: int, errors: dict[str, str], conflict: dict | None = None) -> Response:
        # A form's problem is shown on a page like any other (200): the page is what the
        # person needs, and browsers log every 4xx document as a console error.
        forms = {form_name: {"values": values, "errors": errors}}
        return _claim_page(desk, claim_id, forms=forms, conflict=conflict)

    try:
        model = build(form)
    except ValidationError as exc:
        return await run_in_threadpool(again, 422, _field_errors(exc, fields))

    def write() -> Response:
        # The page is rendered again after the write session is closed (and its write
        # turn given back), never inside it.
        with desk.db.write_session() as session:
            claim = claims.get_claim(session, claim_id, for_update=True)
            try:
                apply(session, claim, model, desk, version)
            except PreconditionFailed:
                problem: tuple[int, dict[str, str], dict | None] = (
                    409, {}, {"form": form_name, "values": values})
            except AppError as exc:
                if exc.status in (404, 503):
                    raise
                problem = (exc.status, {"_form": exc.detail}, None)
            else:
                session.commit()
                return _redirect(f"/claims/{claim_id}?saved={saved}")
        return again(*problem)

    return await run_in_threadpool(write)


@router.post("/claims/{claim_id}/edit")
async def edit_claim(request: Request, claim_id: str) -> Response:
    """Edit the claim's text, language and topics (checkers)."""
    fields = {"text": "text", "language": "language", "topics": "topics"}

    def build(form: FormData) -> ClaimUpdate:
        return ClaimUpdate.model_validate({"text": _text(form, "text"),
                                           "language": _text(form, "language"),
                                           "topics": _words(_text(form, "topics"))})

    def apply(session, claim, model, desk, version) -> None:
        claims.update_claim(session, claim=claim, claim_in=model, expected_version=version,
                          actor=desk.key.name)

    return await _claim_form(request, claim_id, role="checker", form_name="edit",
                             fields=fields, build=build, apply=apply, saved="edit")


@router.post("/claims/{claim_id}/verdict")
async def set_verdict(request: Request, claim_id: str) -> Response:
    """Set the claim's status with a rationale (checkers)."""
    fields = {"status": "status", "rationale": "rationale", "evidence_urls": "evidence_urls"}

    def build(form: FormData) -> ReviewCreate:
        review = ReviewCreate.model_validate({
            "status": _text(form, "status"), "rationale": _text(form, "rationale") or None,
            "evidence_urls": _lines(_text(form, "evidence_urls"))})
        if review.status.is_verdict and not review.rationale:
            raise ValidationError.from_exception_data("ReviewCreate", [{
                "type": "value_error", "loc": ("rationale",), "input": "",
                "ctx": {"error": ValueError(
                    f"a verdict ({STATUS_LABELS[review.status]}) needs a rationale")}}])
        return review

    def apply(session, claim, model, desk, version) -> None:
        reviews.create_review(session, claim=claim, review_in=model,
                              expected_version=version, reviewer=desk.key.name)

    return await _claim_form(request, claim_id, role="checker", form_name="verdict",
                             fields=fields, build=build, apply=apply, saved="verdict")


@router.post("/claims/{claim_id}/sources")
async def attach_source(request: Request, claim_id: str) -> Response:
    """Attach a source by name or alias, with stance, quote and citation (ingesters)."""
    fields = {"source": "source", "stance": "stance", "quote": "quote",
              "citation_url": "citation_url", "_root": "source"}

    def build(form: FormData) -> AttributionCreate:
        body = {"source": _text(form, "source") or None, "stance": _text(form, "stance")}
        for name in ("quote", "citation_url"):
            if _text(form, name):
                body[name] = _text(form, name)
        if body["source"] is None:
            raise ValidationError.from_exception_data("AttributionCreate", [{
                "type": "value_error", "loc": ("source",), "input": "",
                "ctx": {"error": ValueError("name the source")}}])
        return AttributionCreate.model_validate(body)

    def apply(session, claim, model, desk, version) -> None:
        claims.add_attribution(session, claim=claim, att_in=model, expected_version=version,
                             actor=desk.key.name)

    return await _claim_form(request, claim_id, role="ingester", form_name="source",
                             fields=fields, build=build, apply=apply, saved="source")


@router.post("/claims/{claim_id}/links")
async def link_claim(request: Request, claim_id: str) -> Response:
    """Relate this claim to another (checkers)."""
    fields = {"target_id": "target_id", "kind": "kind", "note": "note"}

    def build(form: FormData) -> LinkCreate:
        return LinkCreate.model_validate({"target_id": _text(form, "target_id"),
                                          "kind": _text(form, "kind"),
                                          "note": _text(form, "note") or None})

    def apply(session, claim, model, desk, version) -> None:
        links.create_link(session, claim=claim, link_in=model, expected_version=version,
                         actor=desk.key.name)

    return await _claim_form(request, claim_id, role="checker", form_name="link",
                             fields=fields, build=build, apply=apply, saved="link")


@router.post("/claims/{claim_id}/merge")
async def merge_claim(request: Request, claim_id: str) -> Response:
    """Fold a duplicate into this claim (checkers)."""
    fields = {"duplicate_id": "duplicate_id", "note": "merge_note"}

    def build(form: FormData) -> MergeRequest:
        return MergeRequest.model_validate({"duplicate_id": _text(form, "duplicate_id"),
                                            "note": _text(form, "merge_note") or None})

    def apply(session, claim, model, desk, version) -> None:
        links.merge_claims(session, claim=claim, duplicate_id=model.duplicate_id,
                          expected_version=version, actor=desk.key.name, note=model.note)

    return await _claim_form(request, claim_id, role="checker", form_name="merge",
                             fields=fields, build=build, apply=apply, saved="merge")


@router.post("/claims/{claim_id}/assign")
async def assign_claim(request: Request, claim_id: str) -> Response:
    """Assign the claim to a checker, to me, or to nobody (checkers)."""
    fields = {"assignee": "assignee"}

    def build(form: FormData) -> AssigneeUpdate:
        return AssigneeUpdate.model_validate({"assignee": _text(form, "assignee") or None})

    def apply(session, claim, model, desk, version) -> None:
        assignment.assign_claim(session, claim=claim, assignee=model.assignee,
                                expected_version=version, actor=desk.key.name)

    return await _claim_form(request, claim_id, role="checker", form_name="assign",
                             fields=fields, build=build, apply=apply, saved="assign")


# --- sources ----------------------------------------------------------------------


@router.get("/sources")
async def sources_page(request: Request) -> Response:
    """Sources by name, with a name or alias search and a kind filter."""
    desk = await signed_in(request)
    prefix = request.query_params.get("prefix", "").strip()[:200]
    kind = request.query_params.get("kind", "")
    cursor = request.query_params.get("cursor") or None
    errors = {}
    if kind and kind not in SourceKind.__members__:
        errors["kind"] = "Choose a kind from the list."

    def load() -> Any:
        if errors:
            return None
        with desk.db.session() as session:
            return sources.list_sources(session, prefix=prefix or None,
                                     kind=SourceKind(kind) if kind else None, limit=PAGE,
                                     cursor=cursor)

    page = await run_in_threadpool(load)
    next_url = None
    if page is not None and page.next_cursor:
        next_url = "/sources?" + urlencode({k: v for k, v in (
            ("prefix", prefix), ("kind", kind), ("cursor", page.next_cursor)) if v})
    return _render(request, "sources.html", desk=desk, page=page, prefix=prefix, kind=kind,
                   kinds=list(SourceKind), errors=errors, next_url=next_url)


@router.get("/sources/{source_id}")
async def source_page(request: Request, source_id: str) -> Response:
    """One source: details, its track record as a chart, and its claims."""
    desk = await signed_in(request)
    cursor = request.query_params.get("cursor") or None

    def load() -> dict[str, Any]:
        with desk.db.session() as session:
            snapshot = listing.read_snapshot(session)
            source = sources.get_source(session, source_id)
            public = rendering.source_public(session, source)
            record = stats.source_record(session, source)
            claims = listing.list_claims(session, where=listing.claim_filters(source_id=source_id),
                                         limit=PAGE, cursor=cursor, snapshot=snapshot)
        rows = [(f"{group} {STATUS_LABELS[s]}", n)
                for group, counts in (("Asserted:", record.asserted),
                                      ("Disputed:", record.disputed),
                                      ("Reported:", record.reported))
                for s, n in sorted(counts.items(), key=lambda kv: list(Status).index(kv[0]))]
        chart = charts.bar_chart("record-chart", f"Track record of {public.name}", rows)
        return {"source": public, "record": record, "claims": claims, "chart": chart,
                "rows": rows}

    data = await run_in_threadpool(load)
    next_url = f"/sources/{source_id}?cursor={data['claims'].next_cursor}" \
        if data["claims"].next_cursor else None
    return _render(request, "source.html", desk=desk, next_url=next_url, **data)


# --- overview -----------------------------------------------------------------------


@router.get("/overview")
async def overview_page(request: Request) -> Response:
    """Counts by status, contested claims and claims per day, as charts and tables."""
    desk = await signed_in(request)

    def load() -> dict[str, Any]:
        until = datetime.now(UTC).date()
        since = until - timedelta(days=29)
        cache: stats.StatsCache = request.app.state.stats_cache
        with desk.db.session() as session:
            figures = cache.get(session, (since, until, 10), lambda: stats.ledger_stats(
                session, since=since, until=until, top=10))
        by_status = [(STATUS_LABELS[s], figures.by_status.get(s, 0)) for s in Status]
        days = [(d.date.isoformat() if isinstance(d.date, date) else str(d.date),
                 d.claims, d.reviews) for d in figures.per_day]
        contested = [("Contested", figures.contested),
                     ("Not contested", figures.claims - figures.contested)]
        return {"figures": figures, "by_status": by_status, "days": days,
                "contested_rows": contested,
                "status_chart": charts.bar_chart("status-chart", "Claims by status", by_status),
                "contested_chart": charts.bar_chart("contested-chart", "Contested claims",
                                                    contested),
                "day_chart": charts.day_chart("day-chart", "Claims and reviews per day, "
                                              "last 30 days", days)}

    return _render(request, "overview.html", desk=desk, **await run_in_threadpool(load))


# --- import ---------------------------------------------------------------------------


@router.get("/import")
async def import_page(request: Request) -> Response:
    """Import an NDJSON file of claims, sent in batches with a progress bar."""
    desk = await signed_in(request, "ingester")
    return _render(request, "import.html", desk=desk)


@router.post("/import/batch")
async def import_batch(request: Request) -> Response:
    """One batch of the file being imported (NDJSON lines), as POST /v1/ingest takes it."""
    if not security.same_origin(request):
        raise Refused()
    desk = await signed_in(request, "ingester")
    if not security.csrf_ok(desk.secret, request.headers.get(security.CSRF_HEADER)):
        raise Refused()
    body = await request.body()
    settings = desk.settings
    try:
        items = ingest.parse_batch(body, "application/x-ndjson",
                                   max_items=settings.max_batch_items)
    except AppError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    def run() -> dict[str, Any]:
        with desk.db.write_session() as session:
            result = ingest.ingest(session, items=items, actor=desk.key.name,
                                   threshold=settings.similarity_threshold)
            session.commit()
        return json.loads(result.model_dump_json())

    return JSONResponse(await run_in_threadpool(run))


# --- live -------------------------------------------------------------------------------


@router.get(STREAM_PATH)
async def desk_events(request: Request) -> Response:
    """The live feed for desk pages: /v1/events/stream itself, authenticated by the desk's
    cookie instead of an Authorization header (an EventSource cannot send one)."""
    desk = await signed_in(request)
    claim_id = request.query_params.get("claim_id") or None
    cursor = request.query_params.get("cursor") or None
    return await api_events.stream_events(
        desk.key, request.app.state.db, desk.settings, cursor=cursor, claim_id=claim_id,
        action=None, last_event_id=request.headers.get("last-event-id"), poll_seconds=1.0)
