"""Import a file of claims (NDJSON, or ClaimReview data as POST /v1/ingest takes it), sent
by the page's script in batches with a progress bar.

Each batch carries the page's import key: a batch sent again from the same page (a double
submit, a retried request) replays its first answer, marked `replayed`, instead of
importing twice (app/domain/idempotency.py, as the API's Idempotency-Key)."""

import secrets
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from app.desk.web import Desk, desk_router, fetched, render, signed_in
from app.domain import batches, idempotency
from app.domain.idempotency import Idempotency, Replay
from app.errors import AppError, BadRequest

router = desk_router()

KEY_HEADER = "X-Import-Key"  # the page's import key (hidden in the form)
BATCH_HEADER = "X-Import-Batch"  # the batch's place in the file


@router.get("/import")
async def import_page(request: Request) -> Response:
    """Import a file of claims or ClaimReviews, sent in batches with a progress bar."""
    desk = await signed_in(request, "ingester")
    return render(request, "import.html", desk=desk, import_key=secrets.token_urlsafe(18))


def _problem(exc: AppError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


def batch_number(value: str) -> int:
    """The batch's place in its file, from its header: ASCII digits only (`"²".isdigit()`
    is true, and int() refuses it)."""
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise BadRequest(f"{BATCH_HEADER} must be a batch number")
    return int(value)


def _claim_key(request: Request, desk: Desk, body: bytes) -> Idempotency | None:
    """This batch's claim on its idempotency key, or None when the page sent no key.

    The key names the page, the batch's place and its content: the same file sent again
    from the same page replays; another file from it imports."""
    form_key = request.headers.get(KEY_HEADER)
    if not form_key:
        return None
    batch = batch_number(request.headers.get(BATCH_HEADER, "0"))
    digest = idempotency.request_hash("POST", request.url.path, "", body,
                                      request.headers.get("content-type", ""))
    key = idempotency.check_key(f"desk-import:{form_key}:{batch}:{digest[:32]}")
    return Idempotency.configured(desk.db, desk.settings, desk.key.id, key, digest,
                                  getattr(request.app.state, "heartbeat", None))


@router.post("/import/batch")
async def import_batch(request: Request) -> Response:
    """One batch of the file being imported, as POST /v1/ingest takes it: claims (NDJSON or
    a JSON array) or ClaimReview data; `replayed` when this page sent it before."""
    desk = await fetched(request, "ingester")
    body = await request.body()
    settings = desk.settings
    try:
        batch = batches.parse(body, request.headers.get("content-type", ""),
                              max_items=settings.max_batch_items)
        idem = _claim_key(request, desk, body)
        if idem is not None:
            await run_in_threadpool(idem.begin)
    except Replay as replay:
        return JSONResponse({**replay.body, "replayed": True}, status_code=replay.status)
    except AppError as exc:
        return _problem(exc)

    def run() -> dict[str, Any]:
        with desk.db.write_session() as session:
            result = batches.write(session, batch, key=desk.key,
                                   threshold=settings.similarity_threshold)
            if idem is not None:
                idem.save(session, status=200, body=result)
            session.commit()
        return {**result.model_dump(mode="json"), "replayed": False}

    try:
        return JSONResponse(await run_in_threadpool(run))
    except AppError as exc:
        return _problem(exc)
    finally:
        if idem is not None:
            await run_in_threadpool(idem.release)
