"""Reviews: a claim's status and verdict with its rationale."""

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from pydantic import (
    ConfigDict,
)
from sqlmodel import Field, SQLModel

from app.models.base import (
    NON_BLANK_PATTERN,
    Input,
    JsonSchemaExtra,
    LongText,
    OutputTime,
    Status,
    Url,
    enum_column,
    new_id,
    utcnow,
)

# --- review -------------------------------------------------------------------


class Review(SQLModel, table=True):
    __table_args__ = (sa.Index("ix_review_claim_id_created_at", "claim_id", "created_at"),)
    id: str = Field(default_factory=lambda: new_id("rev"), primary_key=True)
    claim_id: str = Field(foreign_key="claim.id", ondelete="CASCADE")
    from_status: Status = Field(sa_type=enum_column())
    to_status: Status = Field(sa_type=enum_column())
    rationale: str | None = None
    evidence_urls: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    reviewer: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


REVIEW_STATUSES = [s.value for s in Status if s is not Status.unverified]


class ReviewCreate(Input):
    # reviews.create_review, in the schema: a review never sets `unverified` (reopen with
    # in_review), and a verdict (any status but in_review) needs a rationale that is not blank.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"status": {"const": Status.in_review.value}}},
        {"required": ["rationale"],
         "properties": {"rationale": {"type": "string", "pattern": NON_BLANK_PATTERN}}},
    ]})
    status: Annotated[Status, JsonSchemaExtra(enum=REVIEW_STATUSES)]
    rationale: LongText | None = None
    evidence_urls: list[Url] = Field(default_factory=list, max_length=50)


class ReviewPublic(SQLModel):
    id: str
    claim_id: str
    from_status: Status
    to_status: Status
    rationale: str | None
    evidence_urls: list[str]
    reviewer: str
    created_at: OutputTime
