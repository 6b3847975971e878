"""Shared field types, enums and helpers every model uses; the problem and health shapes."""

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
)
from pydantic_core import PydanticCustomError
from sqlmodel import SQLModel

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


def rfc3339(value: datetime) -> str:
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
OutputTime = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]


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


def enum_column(length: int = 32) -> Any:
    return sa.String(length)


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
