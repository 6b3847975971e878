"""The public side of published verdicts, no key needed: a page per fact-check (with its
ClaimReview embedded), their index, a sitemap and a JSON Lines feed. Read-only; no cookies."""

import json
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from app.api import errors
from app.deps import CursorDep, SessionDep, SettingsDep, refuse_nul
from app.domain import claimreview, publishing
from app.domain.claimreview import RATINGS, Publisher
from app.models import Publication, Status

router = APIRouter(tags=["public"], dependencies=[Depends(refuse_nul)])

# Autoescaped: every piece of user text in a page is text, never markup. `tojson` writes
# <, > and & as \u escapes, so no claim can end the JSON-LD <script> block.
templates = Environment(loader=PackageLoader("app", "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True))

HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
PUBLIC_ERRORS = errors(400, 422, 503)
SITEMAP_MAX = 50_000  # the sitemap protocol's limit per file


def _verdict(pub: Publication) -> str:
    return RATINGS[Status(pub.status)][1]


def _home(publisher: Publisher) -> str:
    return f"{publisher.site_url.rstrip('/')}/c/"


# response_class=Response: the errors are then documented as problem+json, not as HTML.
@router.get("/c/{claim_id}", response_class=Response, responses={
    200: {"description": "The fact-check's page", **HTML},
    **errors(404, 410), **PUBLIC_ERRORS})
def get_fact_check_page(claim_id: str, session: SessionDep, settings: SettingsDep
                        ) -> HTMLResponse:
    """A published fact-check as a web page, its ClaimReview embedded as JSON-LD; 410 once
    withdrawn."""
    pub, claim = publishing.get_published(session, claim_id, gone_is_410=True)
    publisher = publishing.publisher_of(settings)
    review = claimreview.claim_review(pub, claim, publisher)
    html = templates.get_template("claim.html").render(
        pub=pub, claim=claim, review=review, rating=review["reviewRating"],
        verdict=_verdict(pub), publisher=publisher, lang=claim.language,
        canonical=publisher.page_url(claim.id), home=_home(publisher))
    return HTMLResponse(html)


@router.get("/c/", response_class=Response, responses={
    200: {"description": "Published fact-checks, newest first", **HTML}, **PUBLIC_ERRORS})
def list_fact_check_pages(
    session: SessionDep, settings: SettingsDep, cursor: CursorDep = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (max 200).")] = 50,
) -> HTMLResponse:
    """Published fact-checks, newest first; the page links to the next."""
    items, next_cursor = publishing.list_published(session, limit=limit, cursor=cursor)
    publisher = publishing.publisher_of(settings)
    next_url = None
    if next_cursor:
        next_url = _home(publisher) + "?" + urlencode({"limit": limit, "cursor": next_cursor})
    html = templates.get_template("index.html").render(
        items=[(pub, claim, _verdict(pub)) for pub, claim in items], page=publisher.page_url,
        publisher=publisher, lang="en", cursor=cursor, next_url=next_url,
        canonical=_home(publisher), home=_home(publisher))
    return HTMLResponse(html)


@router.get("/sitemap.xml", response_class=Response, responses={
    200: {"description": "Sitemap of the fact-check pages",
          "content": {"application/xml": {"schema": {"type": "string"}}}},
    **errors(503)})
def get_sitemap(request: Request, settings: SettingsDep) -> Response:
    """Every published fact-check page, with when it last changed (sitemaps.org)."""
    publisher = publishing.publisher_of(settings)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for n, (pub, claim) in enumerate(publishing.iter_published(request.app.state.db.session)):
        if n == SITEMAP_MAX:
            break
        lines.append(f"<url><loc>{escape(publisher.page_url(claim.id))}</loc>"
                     f"<lastmod>{claimreview.timestamp(pub.modified_at)}</lastmod></url>")
    lines.append("</urlset>")
    return Response("\n".join(lines) + "\n", media_type="application/xml")


@router.get("/claimreview.jsonl", response_class=StreamingResponse, responses={
    200: {"description": "Every published ClaimReview, one JSON object a line",
          "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
    **errors(503)})
def get_claimreview_feed(request: Request, settings: SettingsDep) -> StreamingResponse:
    """Every published ClaimReview, newest first, one JSON-LD object per line."""
    publisher = publishing.publisher_of(settings)
    db = request.app.state.db

    def lines() -> Iterator[bytes]:
        for pub, claim in publishing.iter_published(db.session):
            yield _line(claimreview.claim_review(pub, claim, publisher))

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _line(review: dict[str, Any]) -> bytes:
    return json.dumps(review, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

