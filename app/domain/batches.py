"""A batch as `POST /v1/ingest` and the desk's import take it: claim items (a JSON array or
NDJSON) or ClaimReview / claims:search data, told apart by what the body holds."""

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.domain import claimreview_in, ingest
from app.domain.ingest import IngestResponse
from app.models import ApiKey


@dataclass(frozen=True)
class Batch:
    """A parsed body: its claim items, or its ClaimReview records (the other is None)."""

    items: list[Any] | None = None
    reviews: list[Any] | None = None


def parse(body: bytes, content_type: str, *, max_items: int) -> Batch:
    """The body read and counted (400 or 422 when it cannot be); nothing is written."""
    reviews = claimreview_in.detect(body)
    if reviews is not None:
        claimreview_in.check_count(reviews, max_items)
        return Batch(reviews=reviews)
    return Batch(items=ingest.parse_batch(body, content_type, max_items=max_items))


def write(session: Session, batch: Batch, *, key: ApiKey, threshold: float) -> IngestResponse:
    """Write the batch in the caller's transaction (the caller commits): one result per
    item or record, each failing alone."""
    if batch.reviews is not None:
        return claimreview_in.import_reviews(session, batch.reviews, actor=key.name,
                                             threshold=threshold)
    return ingest.ingest(session, items=batch.items or [], actor=key.name, threshold=threshold,
                         key=key)
