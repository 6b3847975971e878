"""Google Fact Check Tools API v1alpha1, compatible: `claims:search` (public, published
verdicts only) and the ClaimReview markup pages API (a checker key). Google's names, JSON and
error shape (app/middleware/google_errors.py), so Google's own client libraries work."""

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from app.deps import (
    CheckerKey,
    IdempotencyDep,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
    refuse_nul,
)
from app.domain import claimreview, pages, publishing
from app.models import (
    ClaimPublic,
    ClaimReviewMarkupPage,
    ClaimReviewMarkupPageList,
    FactCheckSearchResponse,
    GoogleError,
    Publication,
)

router = APIRouter(prefix="/v1alpha1", tags=["fact check tools (v1alpha1)"],
                   dependencies=[Depends(refuse_nul)])

_STATUSES = {400: "INVALID_ARGUMENT (any invalid parameter or body)",
             401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
             409: "ALREADY_EXISTS", 413: "INVALID_ARGUMENT (body too large)",
             429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def google_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": GoogleError, "description": _STATUSES[s]} for s in statuses}


SEARCH_ERRORS = google_errors(400, 429, 503)
PAGES_ERRORS = google_errors(400, 401, 403, 404, 429, 503)


async def google_parameters(
    alt: Annotated[Literal["json"], Query(description="Response format: JSON only")] = "json",
    key: Annotated[str | None, Query(max_length=500, description="API key (not needed)")] = None,
    fields: Annotated[str | None, Query(max_length=2000, description=(
        "Accepted; every field is returned"))] = None,
    pretty_print: Annotated[bool, Query(alias="prettyPrint")] = True,
    quota_user: Annotated[str | None, Query(alias="quotaUser", max_length=500)] = None,
    xgafv: Annotated[Literal["1", "2"] | None, Query(alias="$.xgafv")] = None,
    access_token: Annotated[str | None, Query(max_length=2000)] = None,
    oauth_token: Annotated[str | None, Query(max_length=2000)] = None,
    callback: Annotated[str | None, Query(max_length=500)] = None,
    upload_type: Annotated[str | None, Query(alias="uploadType", max_length=100)] = None,
    upload_protocol: Annotated[str | None, Query(max_length=100)] = None,
) -> bool:
    """Google's system parameters: accepted, and all but prettyPrint change nothing here."""
    return pretty_print


PrettyDep = Annotated[bool, Depends(google_parameters)]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=200,
                                description="Results per page (1-200, default 10)")]
PageToken = Annotated[str | None, Query(alias="pageToken", max_length=1000,
                                        pattern="^[A-Za-z0-9_-]*$")]
Offset = Annotated[int, Query(ge=0, le=10_000, description="Results to skip (without pageToken)")]


def _json(body: dict[str, Any], pretty: bool) -> Response:
    text = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None)
    return Response(text, media_type="application/json")


def _page(pub: Publication, claim: ClaimPublic, settings: Any) -> dict[str, Any]:
    return claimreview.markup_page(pub, claim, publishing.publisher_of(settings))


@router.get("/claims:search", response_model=FactCheckSearchResponse, responses=SEARCH_ERRORS)
def search_claims(
    session: SessionDep, settings: SettingsDep, pretty: PrettyDep,
    query: Annotated[str | None, Query(max_length=1000, description=(
        "Words to search for; required unless reviewPublisherSiteFilter is given"))] = None,
    language_code: Annotated[str | None, Query(
        alias="languageCode", max_length=35,
        pattern=r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")] = None,
    site_filter: Annotated[str | None, Query(alias="reviewPublisherSiteFilter",
                                             max_length=253)] = None,
    max_age_days: Annotated[int | None, Query(alias="maxAgeDays", ge=0, le=100_000)] = None,
    page_size: PageSize = 10,
    page_token: PageToken = None,
    offset: Offset = 0,
) -> Response:
    """Published fact-checks matching a query, as Google's Fact Check Tools API returns them."""
    publisher = publishing.publisher_of(settings)
    found, token = publishing.search_published(
        session, query=query, language=language_code, site_filter=site_filter,
        max_age_days=max_age_days, page_size=page_size, page_token=page_token, offset=offset,
        publisher=publisher)
    body: dict[str, Any] = {}
    if found:
        body["claims"] = [claimreview.search_claim(p, c, publisher) for p, c in found]
    if token:
        body["nextPageToken"] = token
    return _json(body, pretty)


@router.post("/pages", response_model=ClaimReviewMarkupPage, responses=PAGES_ERRORS)
def create_page(
    page: ClaimReviewMarkupPage, key: CheckerKey, idem: IdempotencyDep, pretty: PrettyDep,
    session: WriteSessionDep, settings: SettingsDep,
) -> Response:
    """Publish the page's verdict; a claim the ledger lacks is created with its claimant."""
    pub, claim = pages.create_page(session, page=page, actor=key.name)
    body = _page(pub, claim, settings)
    idem.save(session, status=200, body=body)
    session.commit()
    return _json(body, pretty)


@router.get("/pages", response_model=ClaimReviewMarkupPageList, responses=PAGES_ERRORS)
def list_pages(
    _: CheckerKey, session: SessionDep, settings: SettingsDep, pretty: PrettyDep,
    url: Annotated[str | None, Query(max_length=2000, description="Only the page at this URL")
                   ] = None,
    organization: Annotated[str | None, Query(max_length=500, description=(
        "Only this organisation's pages (every page here is the publisher's)"))] = None,
    page_size: PageSize = 10,
    page_token: PageToken = None,
    offset: Offset = 0,
) -> Response:
    """The published pages, newest first, or the one at `url`."""
    publisher = publishing.publisher_of(settings)
    body: dict[str, Any] = {}
    if organization and organization.lower() not in (publisher.name.lower(), publisher.site):
        return _json(body, pretty)
    items, token = publishing.list_published(session, limit=page_size, cursor=page_token,
                                             url=url, offset=offset)
    if items:
        body["claimReviewMarkupPages"] = [_page(p, c, settings) for p, c in items]
    if token:
        body["nextPageToken"] = token
    return _json(body, pretty)


PageId = Annotated[str, "the claim's id: a page is named pages/{claim_id}"]


@router.get("/pages/{page_id}", response_model=ClaimReviewMarkupPage, responses=PAGES_ERRORS)
def get_page(page_id: PageId, _: CheckerKey, session: SessionDep, settings: SettingsDep,
             pretty: PrettyDep) -> Response:
    """One published page."""
    pub, claim = publishing.get_published(session, page_id)
    return _json(_page(pub, claim, settings), pretty)


@router.put("/pages/{page_id}", response_model=ClaimReviewMarkupPage, responses=PAGES_ERRORS)
def update_page(
    page_id: PageId, page: ClaimReviewMarkupPage, key: CheckerKey, pretty: PrettyDep,
    session: WriteSessionDep, settings: SettingsDep,
) -> Response:
    """Replace a page's URL and verdict (published again); its claim stays the same."""
    pub, claim = pages.update_page(session, claim_id=page_id, page=page, actor=key.name)
    body = _page(pub, claim, settings)
    session.commit()
    return _json(body, pretty)


@router.delete("/pages/{page_id}", response_model=dict[str, Any], responses=PAGES_ERRORS)
def delete_page(page_id: PageId, key: CheckerKey, pretty: PrettyDep,
                session: WriteSessionDep) -> Response:
    """Withdraw the page's verdict from everything public (Google's empty answer)."""
    pages.delete_page(session, claim_id=page_id, actor=key.name)
    session.commit()
    return _json({}, pretty)
