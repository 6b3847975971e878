"""Sources: the list (a name or alias search, a kind filter) and one source with its track
record as a chart and its claims."""

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.desk import charts
from app.desk.web import PAGE, STATUS_LABELS, desk_router, render, signed_in
from app.domain import listing, rendering, sources, stats
from app.models import SourceKind, Status

router = desk_router()


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
    return render(request, "sources.html", desk=desk, page=page, prefix=prefix, kind=kind,
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
            claims = listing.list_claims(
                session, where=listing.claim_filters(source_id=source_id), limit=PAGE,
                cursor=cursor, snapshot=snapshot)
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
    return render(request, "source.html", desk=desk, next_url=next_url, **data)
