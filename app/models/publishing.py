"""Publications of verdicts."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from pydantic import (
    StringConstraints,
)
from sqlmodel import Field, SQLModel

from app.models.base import Input, NonBlank, OutputTime, Status, Url, enum_column, utcnow

# --- publication --------------------------------------------------------------


class Publication(SQLModel, table=True):
    """A claim's published verdict: what the public ClaimReview, pages and feeds show.

    The verdict is copied at publication time, so a later review changes nothing public
    until the claim is published again. Withdrawal keeps the row (withdrawn_at set)."""

    __table_args__ = (
        # The public lists: live publications newest first.
        sa.Index("ix_publication_withdrawn_at_published_at", "withdrawn_at", "published_at",
                 "claim_id"),
    )
    claim_id: str = Field(foreign_key="claim.id", ondelete="CASCADE", primary_key=True)
    url: str = Field(max_length=2000, index=True)
    headline: str = Field(max_length=500)
    image_url: str | None = Field(default=None, max_length=2000)
    status: Status = Field(sa_type=enum_column())
    rationale: str | None = None
    review_id: str | None = Field(default=None, max_length=100)
    published_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)
    withdrawn_at: datetime | None = None
    published_by: str = Field(max_length=200)


class PublicationCreate(Input):
    url: Url = Field(description="Where the fact-check is published (absolute http(s) URL)")
    headline: Annotated[NonBlank, StringConstraints(max_length=500)]
    image_url: Url | None = None


class PublicationPublic(SQLModel):
    claim_id: str
    url: str
    headline: str
    image_url: str | None
    status: Status
    rationale: str | None
    review_id: str | None
    published_at: OutputTime
    modified_at: OutputTime
    published_by: str
