"""Claims, their topics, band keys, attributions and links, and the claim's public shape."""

from datetime import date, datetime

import sqlalchemy as sa
from pydantic import (
    ConfigDict,
    model_validator,
)
from sqlmodel import Field, SQLModel

from app.models.base import (
    ClaimText,
    Credibility,
    Input,
    InputDate,
    InputTime,
    Label,
    Language,
    LinkKind,
    LongText,
    Name,
    NewClaimText,
    OutputTime,
    ShortText,
    Slug,
    Stance,
    Status,
    Url,
    enum_column,
    new_id,
    not_null,
    utcnow,
)
from app.models.reviews import ReviewPublic
from app.models.sources import SourceRef

# --- claim --------------------------------------------------------------------


class ClaimBase(SQLModel):
    text: ClaimText
    language: Language = Field(default="en", max_length=35)
    places: list[Name] = Field(default_factory=list, sa_type=sa.JSON)
    period_start_date: InputDate | None = None
    period_end_date: InputDate | None = None


class Claim(ClaimBase, table=True):
    __table_args__ = (
        sa.UniqueConstraint("origin", "external_id", name="uq_claim_origin_external_id"),
        sa.Index("ix_claim_created_at_id", "created_at", "id"),
        sa.Index("ix_claim_updated_at_id", "updated_at", "id"),
        # Serves `status = …` and, for one status, its pages newest first without a sort.
        sa.Index("ix_claim_status_created_at_id", "status", "created_at", "id"),
    )
    id: str = Field(default_factory=lambda: new_id("clm"), primary_key=True)
    first_stated_at: datetime | None = None
    origin: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(default=None, max_length=200)
    fingerprint: str = Field(index=True, max_length=64)
    version: int = 1
    status: Status = Field(default=Status.unverified, sa_type=enum_column())
    duplicate_of: str | None = Field(
        default=None, foreign_key="claim.id", ondelete="SET NULL", index=True
    )
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # The checker (a key's name) the claim is handed to, if any: PUT /v1/claims/{id}/assignee.
    assignee: str | None = Field(default=None, max_length=200, index=True)


class ClaimTopic(SQLModel, table=True):
    __tablename__ = "claim_topic"
    claim_id: str = Field(foreign_key="claim.id", ondelete="CASCADE", primary_key=True)
    topic: str = Field(primary_key=True, max_length=64, index=True)


class ClaimBand(SQLModel, table=True):
    """MinHash LSH band keys of a claim's words: claims sharing a band are near-duplicate
    candidates, found with one indexed lookup instead of a scan.

    No foreign key (migration 0009): it cost a check per row, a row per band of a new claim; the
    rows are written with their claim and claims.delete_claim deletes them with it.

    The primary key is the only index (migration 0010; on SQLite the table itself, WITHOUT
    ROWID): a claim's rows are found from its text (`similarity.text_bands`), not by an
    index on claim_id, which cost every band row two more random B-tree inserts.

    Ten bands of 31-bit keys a claim (migration 0016b), where there were 16 of 63 bits:
    the rows were a large share of a ledger's bytes (bench P11)."""

    __tablename__ = "claim_band"
    __table_args__ = {"sqlite_with_rowid": False}
    band: int = Field(sa_column_kwargs={"autoincrement": False}, sa_type=sa.Integer,
                      primary_key=True)
    claim_id: str = Field(primary_key=True)


class AttributionBase(SQLModel):
    stance: Stance = Field(sa_type=enum_column())
    quote: LongText | None = None
    citation_url: Url | None = None
    citation_title: ShortText | None = None
    citation_publisher: ShortText | None = None
    citation_published_date: InputDate | None = None
    credibility: Credibility | None = Field(default=None, sa_type=enum_column(1))
    note: LongText | None = None


class Attribution(AttributionBase, table=True):
    __table_args__ = (
        sa.Index("ix_attribution_source_id_stance", "source_id", "stance"),
        # Distinct claims per source (/v1/stats) from the index alone (migration 0005).
        sa.Index("ix_attribution_source_id_claim_id", "source_id", "claim_id"),
        # The claims some source disputes or denies (`contested`), from the index (0008).
        sa.Index("ix_attribution_stance_claim_id", "stance", "claim_id"),
    )
    id: str = Field(default_factory=lambda: new_id("att"), primary_key=True)
    claim_id: str = Field(foreign_key="claim.id", ondelete="CASCADE", index=True)
    source_id: str = Field(foreign_key="source.id", ondelete="RESTRICT")
    stated_at: datetime | None = None
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class AttributionCreate(AttributionBase, Input):
    """Name the source by `source_id`, or by `source` (a name or alias; unknown names create it)."""

    # _one_source, in the schema: exactly one of the two is given, and not null.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["source_id"],
         "properties": {"source_id": {"type": "string"}, "source": {"type": "null"}}},
        {"required": ["source"],
         "properties": {"source": {"type": "string"}, "source_id": {"type": "null"}}},
    ]})

    source_id: str | None = Field(default=None, min_length=1, max_length=100)
    source: Label | None = None
    stated_at: InputTime | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "AttributionCreate":
        if (self.source_id is None) == (self.source is None):
            raise ValueError("give exactly one of source_id or source")
        return self


class AttributionPublic(AttributionBase):
    id: str
    claim_id: str
    source: SourceRef
    stated_at: OutputTime | None
    created_by: str
    created_at: OutputTime


class ClaimCreate(ClaimBase, Input):
    # _check, in the schema: origin and external_id both, or neither (absent or null).
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["origin", "external_id"],
         "properties": {"origin": {"type": "string"}, "external_id": {"type": "string"}}},
        {"properties": {"origin": {"type": "null"}, "external_id": {"type": "null"}}},
    ]})
    text: NewClaimText
    topics: list[Slug] = Field(default_factory=list, max_length=20)
    places: list[Name] = Field(default_factory=list, max_length=20)
    first_stated_at: InputTime | None = None
    origin: Name | None = None
    external_id: Name | None = None
    attributions: list[AttributionCreate] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _check(self) -> "ClaimCreate":
        if (self.origin is None) != (self.external_id is None):
            raise ValueError("origin and external_id go together")
        _check_period(self.period_start_date, self.period_end_date)
        return self


def _check_period(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise ValueError("period_end_date is before period_start_date")


class ClaimUpdate(Input):
    # null removes a field; text and language cannot be removed (claims.update_claim).
    text: NewClaimText | None = Field(default=None,
                                      schema_extra={"json_schema_extra": not_null})
    language: Language | None = Field(default=None,
                                      schema_extra={"json_schema_extra": not_null})
    topics: list[Slug] | None = Field(default=None, max_length=20)
    places: list[Name] | None = Field(default=None, max_length=20)
    period_start_date: InputDate | None = None
    period_end_date: InputDate | None = None
    first_stated_at: InputTime | None = None


# --- link ---------------------------------------------------------------------


class ClaimLink(SQLModel, table=True):
    __tablename__ = "claim_link"
    __table_args__ = (
        sa.UniqueConstraint("claim_id", "target_id", "kind", name="uq_claim_link_pair_kind"),
        sa.CheckConstraint("claim_id <> target_id", name="not_self"),
    )
    id: str = Field(default_factory=lambda: new_id("lnk"), primary_key=True)
    claim_id: str = Field(foreign_key="claim.id", ondelete="CASCADE", index=True)
    target_id: str = Field(foreign_key="claim.id", ondelete="CASCADE", index=True)
    kind: LinkKind = Field(sa_type=enum_column())
    note: str | None = None
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class LinkCreate(Input):
    target_id: str = Field(max_length=100)
    kind: LinkKind
    note: LongText | None = None


class LinkPublic(SQLModel):
    id: str
    claim_id: str
    target_id: str
    kind: LinkKind
    note: str | None
    created_by: str
    created_at: OutputTime


class MergeRequest(Input):
    duplicate_id: str = Field(max_length=100)
    note: LongText | None = None


class AssigneeUpdate(Input):
    """Hand the claim to a checker (a key's name), or to nobody with null."""

    assignee: Label | None


class ClaimPublic(ClaimBase):
    id: str
    topics: list[str]
    first_stated_at: OutputTime | None
    origin: str | None
    external_id: str | None
    fingerprint: str
    version: int
    status: Status
    duplicate_of: str | None
    assignee: str | None = None
    contested: bool
    created_by: str
    created_at: OutputTime
    updated_at: OutputTime
    attributions: list[AttributionPublic]
    links: list[LinkPublic]
    current_review: ReviewPublic | None


class SimilarClaim(SQLModel):
    claim_id: str
    text: str
    status: Status
    score: float  # Jaccard similarity of the two claims' words, 0..1
    exact: bool  # same normalized text (fingerprint)


class ClaimCreated(ClaimPublic):
    likely_duplicates: list[SimilarClaim] = []
