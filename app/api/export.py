"""Data out: the whole ledger as NDJSON (admin, lossless) and claims as CSV."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.api import READ_ERRORS
from app.api.claims import ClaimFilters, Sort, Time
from app.deps import AdminKey, DatabaseDep, ReaderKey
from app.domain import claims_csv, transfer_export
from app.models import to_utc

router = APIRouter(tags=["export"], responses=READ_ERRORS)

_LINES_A_CHUNK = 256  # lines sent in one piece of the response


def _chunks(lines: Iterator[str]) -> Iterator[bytes]:
    piece: list[str] = []
    for line in lines:
        piece.append(line)
        if len(piece) >= _LINES_A_CHUNK:
            yield "".join(piece).encode("utf-8")
            piece = []
    if piece:
        yield "".join(piece).encode("utf-8")


def _started(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stream with its first piece already made, here in the route: an error before
    anything is sent (a bad search, the database down) is still a problem response."""
    first = next(chunks, b"")

    def stream() -> Iterator[bytes]:
        yield first
        yield from chunks

    return stream()


@router.get("/v1/export", response_class=StreamingResponse, responses={200: {
    "content": {"application/x-ndjson": {"schema": {
        "type": "string", "description": "a header line, one record a line, an end line"}}},
    "description": "The ledger as NDJSON, streamed"}})
def export_ledger(_: AdminKey, db: DatabaseDep, as_of: Time = None) -> StreamingResponse:
    """The whole ledger as NDJSON, for `claimledger import` (lossless; no API keys).

    Read from one snapshot and streamed as it is read. With `as_of`, the ledger as it stood
    then. An export cut short lacks its last line (`"kind":"end"`), and import refuses it.
    """
    moment = to_utc(as_of)

    def body() -> Iterator[bytes]:
        with db.session() as session:
            yield from _chunks(transfer_export.export_lines(session, as_of=moment))

    return StreamingResponse(_started(body()), media_type="application/x-ndjson", headers={
        "Content-Disposition": 'attachment; filename="claimledger-export.ndjson"'})


@router.get("/v1/claims.csv", response_class=StreamingResponse, responses={200: {
    "content": {"text/csv": {"schema": {"type": "string"}}},
    "description": "One row a claim, with a header row (UTF-8)"}})
def export_claims_csv(
    _: ReaderKey,
    db: DatabaseDep,
    where: ClaimFilters,
    q: Annotated[str | None, Query(max_length=1000, description=(
        "Full-text search, as for GET /v1/claims"))] = None,
    sort: Sort | None = None,
) -> StreamingResponse:
    """Every claim `GET /v1/claims` would list with these filters, as CSV (not one page).

    Columns: id, text, language, status, topics, sources (name and stance), contested,
    created_at, updated_at, published_url. A cell starting with `=`, `+`, `-` or `@` gets a
    leading apostrophe, so spreadsheets show it as text.
    """

    def body() -> Iterator[bytes]:
        with db.session() as session:
            for text in claims_csv.claims_csv(session, where=where, q=q, sort=sort):
                yield text.encode("utf-8")

    return StreamingResponse(_started(body()), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="claims.csv"'})
