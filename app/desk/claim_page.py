"""One claim: its page (details, sources, reviews, history, related claims, its published
verdict) and the forms on it, each one `forms.Form` posted back with the version the page
was read at (a stale version shows the conflict: their version next to what was typed)."""

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from app.desk.forms import Form, Values, invalid, lines, submit, text, words
from app.desk.web import STATUS_LABELS, Desk, desk_router, render, signed_in
from app.domain import (
    assignment,
    claims,
    events,
    feed,
    links,
    listing,
    publishing,
    rendering,
    reviews,
    similarity,
)
from app.domain.pagination import encode_cursor
from app.domain.preconditions import IfMatch, parse_if_match
from app.errors import NotFound
from app.models import (
    AssigneeUpdate,
    AttributionCreate,
    Claim,
    ClaimUpdate,
    LinkCreate,
    LinkKind,
    MergeRequest,
    PublicationCreate,
    ReviewCreate,
    Stance,
    Status,
)

router = desk_router()

# The choices of the claim page's selects, as (value, label).
OPTIONS = {
    "statuses_but_new": [(s, STATUS_LABELS[s]) for s in Status if s != Status.unverified],
    "stance_options": [(s, s) for s in Stance],
    "link_options": [(k, k) for k in LinkKind],
}

SAVED = {"edit": "Your changes are saved.", "verdict": "The status is recorded.",
         "source": "The source is attached.", "link": "The link is recorded.",
         "merge": "The duplicate is merged into this claim.",
         "assign": "The assignment is saved.", "created": "The claim is registered.",
         "publish": "The verdict is published.", "withdraw": "The published verdict is "
         "withdrawn: it is no longer public."}


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
        try:
            publication, _ = publishing.get_published(session, claim_id)
        except NotFound:  # never published, or withdrawn
            publication = None
        position = feed.latest_event_id(session, claim_id=claim_id)
    return {"claim": claim, "reviews": claim_reviews, "history": list(reversed(history)),
            "related": related, "duplicates": duplicates, "publication": publication,
            "cursor": encode_cursor(position)}


def _claim_page(desk: Desk, claim_id: str, *, forms: dict | None = None,
                conflict: dict | None = None, saved: str = "") -> HTMLResponse:
    context = _claim_context(desk, claim_id)
    return render(desk.request, "claim.html", desk=desk, forms=forms or {},
                  conflict=conflict, saved=SAVED.get(saved, ""), **OPTIONS, **context)


@router.get("/claims/{claim_id}")
async def claim_page(request: Request, claim_id: str) -> Response:
    """One claim: details, sources, reviews, history, related claims, and forms by role."""
    desk = await signed_in(request)
    saved = request.query_params.get("saved", "")
    return await run_in_threadpool(lambda: _claim_page(desk, claim_id, saved=saved))


Apply = Callable[[Session, Claim, Any, Desk, IfMatch | None], object]


def _claim_form(claim_id: str, *, name: str, role: str,
                fields: Mapping[str, str], build: Callable[[Values], Any],
                apply: Apply) -> Form:
    """A form on the claim page: `apply` calls the domain on the claim, locked for update,
    with the version the page was read at."""

    def write(session: Session, model: Any, desk: Desk, values: Values) -> str:
        version = values["version"]
        expected = parse_if_match(f'"{version}"') if version.isdigit() else None
        claim = claims.get_claim(session, claim_id, for_update=True)
        apply(session, claim, model, desk, expected)
        return f"/claims/{claim_id}?saved={name}"

    def again(desk: Desk, values: Values, errors: dict[str, str],
              conflict: dict[str, Any] | None) -> Response:
        # A form's problem is shown on a page like any other (200): the page is what the
        # person needs, and browsers log every 4xx document as a console error.
        return _claim_page(desk, claim_id, forms={name: {"values": values, "errors": errors}},
                           conflict=conflict and {**conflict, "form": name})

    names = (*dict.fromkeys(fields.values()), "version")
    return Form(role=role, names=names, fields=fields, build=build, write=write, again=again)


@router.post("/claims/{claim_id}/edit")
async def edit_claim(request: Request, claim_id: str) -> Response:
    """Edit the claim's text, language and topics (checkers)."""

    def build(values: Values) -> ClaimUpdate:
        return ClaimUpdate.model_validate({"text": text(values, "text"),
                                           "language": text(values, "language"),
                                           "topics": words(text(values, "topics"))})

    def apply(session, claim, model, desk, version) -> None:
        claims.update_claim(session, claim=claim, claim_in=model, expected_version=version,
                            actor=desk.key.name)

    return await submit(request, _claim_form(
        claim_id, name="edit", role="checker", build=build, apply=apply,
        fields={"text": "text", "language": "language", "topics": "topics"}))


@router.post("/claims/{claim_id}/verdict")
async def set_verdict(request: Request, claim_id: str) -> Response:
    """Set the claim's status with a rationale (checkers)."""

    def build(values: Values) -> ReviewCreate:
        review = ReviewCreate.model_validate({
            "status": text(values, "status"), "rationale": text(values, "rationale") or None,
            "evidence_urls": lines(text(values, "evidence_urls"))})
        if review.status.is_verdict and not review.rationale:
            raise invalid("ReviewCreate", "rationale",
                          f"a verdict ({STATUS_LABELS[review.status]}) needs a rationale")
        return review

    def apply(session, claim, model, desk, version) -> None:
        reviews.create_review(session, claim=claim, review_in=model,
                              expected_version=version, reviewer=desk.key.name)

    return await submit(request, _claim_form(
        claim_id, name="verdict", role="checker", build=build, apply=apply,
        fields={"status": "status", "rationale": "rationale",
                "evidence_urls": "evidence_urls"}))


@router.post("/claims/{claim_id}/sources")
async def attach_source(request: Request, claim_id: str) -> Response:
    """Attach a source by name or alias, with stance, quote and citation (ingesters)."""

    def build(values: Values) -> AttributionCreate:
        if not text(values, "source"):
            raise invalid("AttributionCreate", "source", "name the source")
        body = {"source": text(values, "source"), "stance": text(values, "stance")}
        for field in ("quote", "citation_url"):
            if text(values, field):
                body[field] = text(values, field)
        return AttributionCreate.model_validate(body)

    def apply(session, claim, model, desk, version) -> None:
        claims.add_attribution(session, claim=claim, att_in=model, expected_version=version,
                               actor=desk.key.name)

    return await submit(request, _claim_form(
        claim_id, name="source", role="ingester", build=build, apply=apply,
        fields={"source": "source", "stance": "stance", "quote": "quote",
                "citation_url": "citation_url", "_root": "source"}))


@router.post("/claims/{claim_id}/links")
async def link_claim(request: Request, claim_id: str) -> Response:
    """Relate this claim to another (checkers)."""

    def build(values: Values) -> LinkCreate:
        return LinkCreate.model_validate({"target_id": text(values, "target_id"),
                                          "kind": text(values, "kind"),
                                          "note": text(values, "note") or None})

    def apply(session, claim, model, desk, version) -> None:
        links.create_link(session, claim=claim, link_in=model, expected_version=version,
                          actor=desk.key.name)

    return await submit(request, _claim_form(
        claim_id, name="link", role="checker", build=build, apply=apply,
        fields={"target_id": "target_id", "kind": "kind", "note": "note"}))


@router.post("/claims/{claim_id}/merge")
async def merge_claim(request: Request, claim_id: str) -> Response:
    """Fold a duplicate into this claim (checkers)."""

    def build(values: Values) -> MergeRequest:
        return MergeRequest.model_validate({"duplicate_id": text(values, "duplicate_id"),
                                            "note": text(values, "merge_note") or None})

    def apply(session, claim, model, desk, version) -> None:
        links.merge_claims(session, claim=claim, duplicate_id=model.duplicate_id,
                           expected_version=version, actor=desk.key.name, note=model.note)

    return await submit(request, _claim_form(
        claim_id, name="merge", role="checker", build=build, apply=apply,
        fields={"duplicate_id": "duplicate_id", "note": "merge_note"}))


@router.post("/claims/{claim_id}/assign")
async def assign_claim(request: Request, claim_id: str) -> Response:
    """Assign the claim to a checker, to me, or to nobody (checkers)."""

    def build(values: Values) -> AssigneeUpdate:
        return AssigneeUpdate.model_validate({"assignee": text(values, "assignee") or None})

    def apply(session, claim, model, desk, version) -> None:
        assignment.assign_claim(session, claim=claim, assignee=model.assignee,
                                expected_version=version, actor=desk.key.name)

    return await submit(request, _claim_form(
        claim_id, name="assign", role="checker", build=build, apply=apply,
        fields={"assignee": "assignee"}))


@router.post("/claims/{claim_id}/publish")
async def publish_claim(request: Request, claim_id: str) -> Response:
    """Publish the claim's current verdict at a URL, with a headline (checkers), as
    POST /v1/claims/{claim_id}/publish does."""

    def build(values: Values) -> PublicationCreate:
        body = {"url": text(values, "url"), "headline": text(values, "headline")}
        if text(values, "image_url"):
            body["image_url"] = text(values, "image_url")
        return PublicationCreate.model_validate(body)

    def apply(session, claim, model, desk, version) -> None:
        publishing.publish(session, claim=claim, pub_in=model, expected_version=version,
                           actor=desk.key.name)

    return await submit(request, _claim_form(
        claim_id, name="publish", role="checker", build=build, apply=apply,
        fields={"url": "url", "headline": "headline", "image_url": "image_url"}))


@router.post("/claims/{claim_id}/withdraw")
async def withdraw_claim(request: Request, claim_id: str) -> Response:
    """Withdraw the published verdict from everything public (checkers), as
    DELETE /v1/claims/{claim_id}/publish does."""

    def apply(session, claim, _model, desk, version) -> None:
        publishing.withdraw(session, claim=claim, expected_version=version,
                            actor=desk.key.name)

    return await submit(request, _claim_form(
        claim_id, name="withdraw", role="checker", build=lambda _values: None,
        apply=apply, fields={}))
