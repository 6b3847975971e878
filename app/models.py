"""Every table and its API shapes, one block per resource: Base, table, Create, Update, Public."""

import re
import secrets
import unicodedata
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlmodel import Field, SQLModel

from app.domain.text import NO_WORD, has_word

# Constraint names are explicit so migrations stay the same on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id(prefix: str) -> str:
    """An opaque, non-sequential id such as `clm_4f9c…`."""
    return f"{prefix}_{secrets.token_hex(10)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime | None) -> datetime | None:
    """An aware datetime in UTC (naive ones are taken to be UTC already)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is a valid time with no UTC equivalent
        raise ValueError("the time is out of range once converted to UTC") from None


def _rfc3339(value: datetime) -> str:
    return to_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# --- shared field types -------------------------------------------------------

# Control characters other than tab and newlines, and UTF-16 surrogates (which a valid str
# holds only unpaired). One regex scan: this runs on every text field of every request.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Reject what no database stores faithfully (NUL, lone surrogates, control bytes); NFC."""
    bad = _UNSTORABLE.search(value)
    if bad is not None:
        if 0xD800 <= ord(bad.group()) <= 0xDFFF:
            raise ValueError("text contains an unpaired UTF-16 surrogate")
        raise ValueError("text contains control characters")
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    return value.strip()


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


def _worded(value: str) -> str:
    if not has_word(value):
        raise PydanticCustomError("no_letter_or_digit", NO_WORD)
    return value


class JsonSchemaExtra:
    """Says in the JSON Schema (so in OpenAPI) what a validator checks; validation is unchanged."""

    def __init__(self, **extra: Any):
        self.extra = extra

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema.update(self.extra)
        return schema


# clean_text's rules as patterns (ECMA-262, Python and Rust read these the same way): no
# control character but tab and newlines, and for NonBlank at least one character that
# str.strip() keeps. Lone surrogates, also refused, have no portable pattern.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_SPACE_OR_CONTROL = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
STORABLE_PATTERN = f"^[^{_CONTROL}]*$"
NON_BLANK_PATTERN = f"^[^{_CONTROL}]*[^{_SPACE_OR_CONTROL}][^{_CONTROL}]*$"

Text = Annotated[str, AfterValidator(clean_text), JsonSchemaExtra(pattern=STORABLE_PATTERN)]
NonBlank = Annotated[str, AfterValidator(clean_text), AfterValidator(_not_blank),
                     JsonSchemaExtra(pattern=NON_BLANK_PATTERN)]
ClaimText = Annotated[NonBlank, StringConstraints(max_length=2000)]
Name = Annotated[NonBlank, StringConstraints(max_length=200)]
# What people read and look things up by: a claim's text, a source's name or alias, a key's
# name need a letter or digit (app.domain.text.has_word). Input models only: rows stored before
# the rule must still read back.
NewClaimText = Annotated[ClaimText, AfterValidator(_worded)]
Label = Annotated[Name, AfterValidator(_worded)]
ShortText = Annotated[Text, StringConstraints(max_length=500)]
LongText = Annotated[Text, StringConstraints(max_length=5000)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)]
Language = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$", max_length=35)
]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# No space or control character anywhere in a URL. Spelled out rather than `\s`: Python
# and the JSON Schema (ECMA 262) regex that clients validate with disagree about `\s`
# (U+0085 and U+001C-U+001F are space only to Python, U+FEFF only to ECMA 262).
_NOT_IN_URL = (r"\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
               r"\u3000\ufeff")
Url = Annotated[str, StringConstraints(
    pattern=rf"^https?://[^{_NOT_IN_URL}/$.?#][^{_NOT_IN_URL}]*$", max_length=2000)]
# A date or time in a request is RFC 3339 text: pydantic alone would also take a number (or a
# string of digits, as in a query) for a Unix time, which the documented schema (a string
# with format date or date-time) refuses.
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("must be an RFC 3339 date or time, not a number")
    return value


InputDate = Annotated[date, BeforeValidator(_not_a_number)]
InputTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(to_utc)]
OutputTime = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str)]


def not_null(schema: dict[str, Any]) -> None:
    """json_schema_extra of an optional field that may be left out but not set to null."""
    schema.pop("default", None)
    (kept,) = [branch for branch in schema.pop("anyOf") if branch.get("type") != "null"]
    schema.update(kept)


class Input(SQLModel):
    """Base of every request body: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


# --- enums --------------------------------------------------------------------


class Status(StrEnum):
    unverified = "unverified"
    in_review = "in_review"
    true = "true"
    mostly_true = "mostly_true"
    mixed = "mixed"
    mostly_false = "mostly_false"
    false = "false"
    misleading = "misleading"
    unverifiable = "unverifiable"

    @property
    def is_verdict(self) -> bool:
        return self not in (Status.unverified, Status.in_review)


class Stance(StrEnum):
    asserts = "asserts"
    supports = "supports"
    disputes = "disputes"
    denies = "denies"
    reports = "reports"


FOR_STANCES = (Stance.asserts, Stance.supports)
AGAINST_STANCES = (Stance.disputes, Stance.denies)


class SourceKind(StrEnum):
    government = "government"
    military = "military"
    intergovernmental = "intergovernmental"
    ngo = "ngo"
    think_tank = "think_tank"
    news_agency = "news_agency"
    media = "media"
    expert = "expert"
    eyewitness = "eyewitness"
    anonymous = "anonymous"
    other = "other"


class Reliability(StrEnum):
    """Admiralty scale, source reliability."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"


class Credibility(StrEnum):
    """Admiralty scale, information credibility: 1 confirmed … 6 cannot be judged."""

    confirmed = "1"
    probably_true = "2"
    possibly_true = "3"
    doubtful = "4"
    improbable = "5"
    cannot_be_judged = "6"


class LinkKind(StrEnum):
    supports = "supports"
    contradicts = "contradicts"
    duplicates = "duplicates"
    updates = "updates"
    related = "related"


class Role(StrEnum):
    reader = "reader"
    ingester = "ingester"
    checker = "checker"
    admin = "admin"


def _enum_col(length: int = 32) -> Any:
    return sa.String(length)


# --- source -------------------------------------------------------------------


class SourceBase(SQLModel):
    name: Name
    kind: SourceKind = Field(default=SourceKind.other, sa_type=_enum_col())
    country: Country | None = Field(default=None, sa_type=sa.String(2))
    homepage: Url | None = None
    description: LongText | None = None
    reliability: Reliability = Field(default=Reliability.F, sa_type=_enum_col(1))


class Source(SourceBase, table=True):
    id: str = Field(default_factory=lambda: new_id("src"), primary_key=True)
    aliases: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    affiliation_id: str | None = Field(default=None, foreign_key="source.id", ondelete="SET NULL")
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SourceName(SQLModel, table=True):
    """Lookup index of every source's normalized name and aliases; one namespace for both."""

    __tablename__ = "source_name"
    key: str = Field(primary_key=True, max_length=400)
    source_id: str = Field(foreign_key="source.id", ondelete="CASCADE", index=True)
    label: str
    is_name: bool = False


class SourceCreate(SourceBase, Input):
    name: Label
    aliases: list[Label] = Field(default_factory=list, max_length=50)
    affiliation_id: str | None = Field(default=None, max_length=100)


class SourceUpdate(Input):
    # null removes a field; name, kind and reliability cannot be removed (sources.update_source).
    name: Label | None = Field(default=None, schema_extra={"json_schema_extra": not_null})
    aliases: list[Label] | None = Field(default=None, max_length=50)
    kind: SourceKind | None = Field(default=None, schema_extra={"json_schema_extra": not_null})
    country: Country | None = None
    homepage: Url | None = None
    description: LongText | None = None
    reliability: Reliability | None = Field(default=None,
                                            schema_extra={"json_schema_extra": not_null})
    affiliation_id: str | None = Field(default=None, max_length=100)


class SourceRef(SQLModel):
    id: str
    name: str
    kind: SourceKind
    reliability: Reliability


class SourcePublic(SourceBase):
    id: str
    aliases: list[str]
    affiliation: SourceRef | None = None
    version: int
    created_at: OutputTime
    updated_at: OutputTime


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
    status: Status = Field(default=Status.unverified, sa_type=_enum_col())
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

    No foreign key (migration 0009): it cost a check per row, 16 rows per new claim; the
    rows are written with their claim and claims.delete_claim deletes them with it.

    The primary key is the only index (migration 0010; on SQLite the table itself, WITHOUT
    ROWID): a claim's rows are found from its text (`similarity.text_bands`), not by an
    index on claim_id, which cost every band row two more random B-tree inserts."""

    __tablename__ = "claim_band"
    __table_args__ = {"sqlite_with_rowid": False}
    band: int = Field(sa_column_kwargs={"autoincrement": False}, sa_type=sa.BigInteger,
                      primary_key=True)
    claim_id: str = Field(primary_key=True)


class AttributionBase(SQLModel):
    stance: Stance = Field(sa_type=_enum_col())
    quote: LongText | None = None
    citation_url: Url | None = None
    citation_title: ShortText | None = None
    citation_publisher: ShortText | None = None
    citation_published_date: InputDate | None = None
    credibility: Credibility | None = Field(default=None, sa_type=_enum_col(1))
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


# --- review -------------------------------------------------------------------


class Review(SQLModel, table=True):
    __table_args__ = (sa.Index("ix_review_claim_id_created_at", "claim_id", "created_at"),)
    id: str = Field(default_factory=lambda: new_id("rev"), primary_key=True)
    claim_id: str = Field(foreign_key="claim.id", ondelete="CASCADE")
    from_status: Status = Field(sa_type=_enum_col())
    to_status: Status = Field(sa_type=_enum_col())
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
    kind: LinkKind = Field(sa_type=_enum_col())
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


# --- event --------------------------------------------------------------------


class Event(SQLModel, table=True):
    """The append-only change log: audit trail, live feed and source of `as_of` history."""

    __table_args__ = (sa.Index("ix_event_claim_id_id", "claim_id", "id"),)
    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    entity_type: str = Field(max_length=32)
    entity_id: str = Field(max_length=100)
    claim_id: str | None = Field(default=None, max_length=100)
    changes: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    snapshot: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class EventPublic(SQLModel):
    id: int
    at: OutputTime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    claim_id: str | None
    changes: dict[str, Any]


# --- api key ------------------------------------------------------------------


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: str = Field(default_factory=lambda: new_id("key"), primary_key=True)
    name: str = Field(max_length=200)
    role: Role = Field(sa_type=_enum_col())
    prefix: str = Field(max_length=16)
    secret_hash: str = Field(max_length=64, unique=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class ApiKeyCreate(Input):
    name: Label
    role: Role


class ApiKeyPublic(SQLModel):
    id: str
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: OutputTime
    revoked_at: OutputTime | None


class ApiKeyCreated(ApiKeyPublic):
    secret: str


# --- idempotency --------------------------------------------------------------


class IdempotencyRecord(SQLModel, table=True):
    """A POST seen with an Idempotency-Key: pending while it runs, then its response."""

    __tablename__ = "idempotency_record"
    api_key_id: str = Field(primary_key=True, max_length=100)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    done: bool = False
    status_code: int | None = None
    response_body: Any = Field(default=None, sa_type=sa.JSON)
    response_headers: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime = Field(default_factory=utcnow)
    # Who holds a pending claim: the server instance (see Instance) and that claim's own
    # token, so a request whose claim was taken over cannot store its response too.
    instance_id: str | None = Field(default=None, max_length=32)
    claim_token: str | None = Field(default=None, max_length=32)


class Instance(SQLModel, table=True):
    """A running server process, alive while its heartbeat (last_seen_at) is fresh."""

    id: str = Field(primary_key=True, max_length=32)
    last_seen_at: datetime = Field(default_factory=utcnow)


class RateLimitWindow(SQLModel, table=True):
    """Requests per key per minute, shared by the workers of a PostgreSQL deployment."""

    __tablename__ = "rate_limit_window"
    key_id: str = Field(primary_key=True, max_length=100)
    window_start: datetime = Field(primary_key=True)
    hits: int = 0


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
    status: Status = Field(sa_type=_enum_col())
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


# --- Google Fact Check Tools API (v1alpha1) shapes ------------------------------
# Google's names (camelCase) and protobuf JSON: fields with no value are left out of
# responses (routes exclude None). Inputs refuse unknown fields, as Google does.


class GoogleShape(SQLModel):
    model_config = ConfigDict(extra="forbid")


class FactCheckPublisher(GoogleShape):
    name: str | None = None
    site: str | None = None


class FactCheckReview(GoogleShape):
    publisher: FactCheckPublisher | None = None
    url: str | None = None
    title: str | None = None
    reviewDate: str | None = None
    textualRating: str | None = None
    languageCode: str | None = None


class FactCheckClaim(GoogleShape):
    text: str | None = None
    claimant: str | None = None
    claimDate: str | None = None
    claimReview: list[FactCheckReview] | None = None


class FactCheckSearchResponse(GoogleShape):
    claims: list[FactCheckClaim] | None = None
    nextPageToken: str | None = None


# Names and texts are checked as a claim's and a source's are when the page makes them
# (app/domain/pages.py: 400), not here: the pages API answers 400, never 422.
class ClaimAuthor(GoogleShape):
    name: Name | None = None
    imageUrl: Url | None = None
    jobTitle: ShortText | None = None
    sameAs: Url | None = None


class ClaimRating(GoogleShape):
    textualRating: ShortText | None = None
    ratingValue: int | None = Field(default=None, ge=-2**31, lt=2**31)
    worstRating: int | None = Field(default=None, ge=-2**31, lt=2**31)
    bestRating: int | None = Field(default=None, ge=-2**31, lt=2**31)
    ratingExplanation: LongText | None = None
    imageUrl: Url | None = None


class ClaimReviewMarkup(GoogleShape):
    claimReviewed: ClaimText | None = None
    url: Url | None = None
    rating: ClaimRating | None = None
    claimAuthor: ClaimAuthor | None = None
    claimDate: ShortText | None = None
    claimLocation: ShortText | None = None
    claimFirstAppearance: Url | None = None
    claimAppearances: list[Url] | None = Field(default=None, max_length=100)


class ClaimReviewAuthor(GoogleShape):
    name: ShortText | None = None
    imageUrl: Url | None = None


class ClaimReviewMarkupPage(GoogleShape):
    """A page of ClaimReview markup (Google's pages API): here, one published verdict."""

    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    pageUrl: Url | None = None
    publishDate: ShortText | None = None
    claimReviewAuthor: ClaimReviewAuthor | None = None
    claimReviewMarkups: list[ClaimReviewMarkup] | None = Field(default=None, max_length=100)
    versionId: Annotated[str, StringConstraints(max_length=100)] | None = None


class ClaimReviewMarkupPageList(GoogleShape):
    claimReviewMarkupPages: list[ClaimReviewMarkupPage] | None = None
    nextPageToken: str | None = None


class GoogleErrorBody(SQLModel):
    code: int
    message: str
    status: str


class GoogleError(SQLModel):
    """Google's error shape, which /v1alpha1 answers with instead of problem+json."""

    error: GoogleErrorBody
# --- origin owner -------------------------------------------------------------


class OriginOwner(SQLModel, table=True):
    """The key an ingest feed (`origin`) belongs to: the first that ingested with it, or the
    one an admin handed it to. Other ingester keys may not add to it or change its claims."""

    __tablename__ = "origin_owner"
    origin: str = Field(primary_key=True, max_length=200)
    key_id: str = Field(foreign_key="api_key.id", max_length=100, index=True)
    granted_by: str = Field(max_length=200)
    granted_at: datetime = Field(default_factory=utcnow)


class OriginOwnerUpdate(Input):
    key_id: str = Field(min_length=1, max_length=100)


class OriginPublic(SQLModel):
    origin: str
    claims: int  # claims stored under it (merged ones included)
    owner_key_id: str | None  # null: no key has ingested with it since owners were kept
    owner_name: str | None
    granted_by: str | None
    granted_at: OutputTime | None


# --- source merge -------------------------------------------------------------


class SourceMerge(SQLModel, table=True):
    """A source folded into another (its row is gone): its id resolves to the survivor."""

    __tablename__ = "source_merge"
    duplicate_id: str = Field(primary_key=True, max_length=100)
    survivor_id: str = Field(max_length=100, index=True)  # may itself be merged later
    duplicate_name: str = Field(max_length=200)
    merged_by: str = Field(max_length=200)
    merged_at: datetime = Field(default_factory=utcnow)


class SourceMergeRequest(Input):
    duplicate_id: str = Field(min_length=1, max_length=100)
    note: LongText | None = None


class SimilarSource(SourcePublic):
    score: float  # 0..1: how close the best of its names is to `similar_to`
    matched: str  # that name or alias


# --- shapes shared by routes --------------------------------------------------


class Problem(SQLModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class Health(SQLModel):
    status: str
    detail: str | None = None


# --- webhook ------------------------------------------------------------------


class Webhook(SQLModel, table=True):
    """A subscription: events after `cursor` that match it go to `url`, signed, in order."""

    id: str = Field(default_factory=lambda: new_id("whk"), primary_key=True, max_length=32)
    url: str = Field(max_length=2000)
    # Event actions wanted (`claim.created`, `review.*`); ["*"] is every event.
    event_types: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # Only events about a claim with one of these topics; [] is no filter.
    topics: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    secret: str = Field(max_length=100)
    # After a rotation the old secret signs too until it expires (both signatures sent).
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = None
    active: bool = True
    disabled_reason: str | None = Field(default=None, max_length=500)
    # The last event id delivered (or passed over as not wanted): the next send is after it.
    cursor: int = Field(default=0, sa_type=sa.BigInteger)
    # Failed attempts at the event after `cursor`, and when the next one is due.
    attempts: int = 0
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    # A worker sending for this subscription holds it until lease_until (at-least-once:
    # a worker that died mid-send is replaced once its lease runs out).
    lease_until: datetime | None = None
    lease_token: str | None = Field(default=None, max_length=32)
    version: int = 1
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


# Every action the event log records; a subscription names some of them, `kind.*`, or `*`.
EVENT_TYPES = (
    "claim.created", "claim.updated", "claim.deleted", "claim.merged", "claim.merged_into",
    "claim.assigned", "claim.published", "claim.withdrawn", "claim.update_refused",
    "attribution.created", "attribution.deleted", "review.created",
    "link.created", "link.deleted", "link.moved", "source.created", "source.updated",
    "source.merged", "source.merged_into", "origin.claimed", "origin.owner_set",
    "key.created", "key.revoked",
    "webhook.created", "webhook.updated", "webhook.deleted", "webhook.secret_rotated",
    "webhook.disabled",
)
_KINDS = sorted({t.split(".")[0] for t in EVENT_TYPES})
EventType = Annotated[str, StringConstraints(pattern="^(?:\\*|(?:{})\\.\\*|{})$".format(
    "|".join(_KINDS), "|".join(t.replace(".", "\\.") for t in EVENT_TYPES)))]


class WebhookCreate(Input):
    url: Url
    event_types: list[EventType] = Field(default=["*"], min_length=1, max_length=50)
    topics: list[Slug] = Field(default=[], max_length=20)
    active: bool = True


class WebhookUpdate(Input):
    # Every field may be left out; none may be null.
    url: Url | None = Field(default=None, schema_extra={"json_schema_extra": not_null})
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, max_length=50, schema_extra={"json_schema_extra": not_null})
    topics: list[Slug] | None = Field(default=None, max_length=20,
                                      schema_extra={"json_schema_extra": not_null})
    active: bool | None = Field(default=None, schema_extra={"json_schema_extra": not_null})

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} cannot be null; leave it out instead")
        return data


class WebhookPublic(SQLModel):
    id: str
    url: str
    event_types: list[str]
    topics: list[str]
    active: bool
    disabled_reason: str | None
    last_event_id: int
    attempts: int
    failing_since: OutputTime | None
    next_attempt_at: OutputTime | None
    secret_rotated: bool
    version: int
    created_by: str
    created_at: OutputTime
    updated_at: OutputTime


class WebhookCreated(WebhookPublic):
    """The subscription with its signing secret, shown this once."""

    secret: str


class DeliveryStatus(StrEnum):
    queued = "queued"
    succeeded = "succeeded"
    failed = "failed"


class WebhookDelivery(SQLModel, table=True):
    """One attempt to send a message to a subscription (or a queued test or redelivery)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.Index("ix_webhook_delivery_webhook_id_created_at", "webhook_id", "created_at"),
    )
    id: str = Field(default_factory=lambda: new_id("dlv"), primary_key=True, max_length=32)
    webhook_id: str = Field(max_length=32)
    event_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    message_id: str = Field(max_length=100)
    type: str = Field(max_length=64)
    attempt: int = 1
    # A test or a redelivery asked for through the API: sent once, out of order.
    manual: bool = False
    status: DeliveryStatus = Field(sa_type=_enum_col(16))
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = Field(default=None, max_length=500)
    next_attempt_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    attempted_at: datetime | None = None


class WebhookDeliveryPublic(SQLModel):
    id: str
    webhook_id: str
    event_id: int | None
    message_id: str
    type: str
    attempt: int
    manual: bool
    status: DeliveryStatus
    status_code: int | None
    latency_ms: float | None
    error: str | None
    next_attempt_at: OutputTime | None
    created_at: OutputTime
    attempted_at: OutputTime | None
