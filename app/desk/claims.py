"""Claims: the list (search, filters, sorting, paging), my queue, and a new claim."""

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.desk.forms import Form, Values, submit, text, words
from app.desk.web import PAGE, Desk, desk_router, render, signed_in
from app.domain import assignment, claims, feed, listing, publishing, sources
from app.domain.pagination import encode_cursor
from app.errors import AppError
from app.models import ClaimCreate, Stance, Status

router = desk_router()

SORTS = {"-created_at": "Newest first", "created_at": "Oldest first",
         "-updated_at": "Recently changed", "updated_at": "Least recently changed",
         "relevance": "Best match (with a search)"}
YES_NO = {"yes": True, "no": False}
FILTERS = ("q", "status", "source", "topic", "language", "contested", "published", "sort",
           "cursor")


def _list_filters(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """The list's query parameters as typed, and a problem message per invalid one."""
    params = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    errors: dict[str, str] = {}
    if params["status"] and params["status"] not in Status.__members__:
        errors["status"] = "Choose a status from the list."
    if params["contested"] not in ("", *YES_NO):
        errors["contested"] = "Choose yes, no or either."
    if params["published"] not in ("", *YES_NO):
        errors["published"] = "Choose published, not published or either."
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
                language=params["language"] or None, contested=YES_NO.get(params["contested"]))
            if params["published"]:  # as GET /v1/claims?published= adds it
                where.append(publishing.published_clause(YES_NO[params["published"]]))
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
    return render(request, "claims.html", desk=desk, params=params, errors=errors,
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

    return render(request, "queue.html", desk=desk, **await run_in_threadpool(load))


def _new_claim_page(desk: Desk, values: Values, errors: dict[str, str],
                    _conflict: Any = None) -> Response:
    return render(desk.request, "new_claim.html", desk=desk, values=values, errors=errors,
                  stances=[(s, s) for s in Stance])


@router.get("/claims/new")
async def new_claim_form(request: Request) -> Response:
    """The form to register a claim (ingesters and up)."""
    return _new_claim_page(await signed_in(request, "ingester"), {}, {})


def _build_claim(values: Values) -> ClaimCreate:
    body: dict[str, Any] = {"text": text(values, "text"),
                            "language": text(values, "language") or "en",
                            "topics": words(text(values, "topics"))}
    if text(values, "source"):
        att = {"source": text(values, "source"), "stance": text(values, "stance") or "asserts"}
        for name in ("quote", "citation_url"):
            if text(values, name):
                att[name] = text(values, name)
        body["attributions"] = [att]
    return ClaimCreate.model_validate(body)


def _write_claim(session: Session, claim_in: ClaimCreate, desk: Desk, _values: Values) -> str:
    claim = claims.create_claim(session, claim_in=claim_in, actor=desk.key.name)
    return f"/claims/{claim.id}?saved=created"


NEW_CLAIM = Form(
    role="ingester",
    names=("text", "language", "topics", "source", "stance", "quote", "citation_url"),
    fields={"text": "text", "language": "language", "topics": "topics", "source": "source",
            "stance": "stance", "quote": "quote", "citation_url": "citation_url",
            "attributions": "source"},
    build=_build_claim, write=_write_claim, again=_new_claim_page)


@router.post("/claims/new")
async def create_claim(request: Request) -> Response:
    """Register a claim, with one source if named."""
    return await submit(request, NEW_CLAIM)
