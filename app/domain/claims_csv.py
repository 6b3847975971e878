"""Claims as CSV for spreadsheets: every claim a list or search matches, one row each."""

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from app.domain import listing
from app.models import ClaimPublic, Publication
from app.models.base import rfc3339

COLUMNS = ["id", "text", "language", "status", "topics", "sources", "contested", "created_at",
           "updated_at", "published_url"]
PAGE = 200  # claims read and rendered at a time
# A cell a spreadsheet would take for a formula (CSV injection): shown as text instead.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # so spreadsheet programs read the file as UTF-8


def safe_cell(value: str) -> str:
    """The cell as text a spreadsheet will not evaluate: a leading formula character is
    escaped with an apostrophe, as spreadsheet programs do themselves."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _row(claim: ClaimPublic, published: dict[str, str]) -> list[str]:
    sources = "; ".join(f"{a.source.name} ({a.stance})" for a in claim.attributions)
    cells = [claim.id, claim.text, claim.language, claim.status, "; ".join(claim.topics),
             sources, "true" if claim.contested else "false",
             rfc3339(claim.created_at), rfc3339(claim.updated_at), published.get(claim.id, "")]
    return [safe_cell(str(cell)) for cell in cells]


def published_urls(session: Session, claim_ids: Sequence[str]) -> dict[str, str]:
    """The URL each claim's verdict is published at (withdrawn publications have none)."""
    if not claim_ids:
        return {}
    rows = session.execute(sa.select(Publication.claim_id, Publication.url).where(
        col(Publication.claim_id).in_(list(claim_ids)), col(Publication.withdrawn_at).is_(None)))
    return {claim_id: url for claim_id, url in rows}


def _text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def claims_csv(session: Session, *, where: list[sa.ColumnElement[bool]], q: str | None,
               sort: str | None) -> Iterator[str]:
    """The CSV text, a page of claims at a time, read from one snapshot (the header first)."""
    snapshot = listing.read_snapshot(session)
    yield BOM + _text([COLUMNS])
    cursor = None
    while True:
        page = listing.list_claims(session, where=where, sort=sort, limit=PAGE, cursor=cursor,
                                   q=q, snapshot=snapshot)
        claims: list[Any] = page.items
        if claims:
            published = published_urls(session, [c.id for c in claims])
            yield _text([_row(c, published) for c in claims])
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
