"""The ledger file: the record kinds an export holds, in import order, and its lines.

An export is a header line (format and schema version), one line per record, then an end
line. A record line is `{"kind": …, "data": {column: value}, "check": …}`: every column of
its table, serialised generically, and a checksum of kind and data, so an edited line is
named on import. The end line counts the records and carries a digest of every check in
order, so a file cut short or with lines lost is refused. Lines are written in the order
of `KINDS`, which imports without forward references, and within a kind by key.

Derived data is not exported but rebuilt on import: the search index and the near-duplicate
bands. API keys are not exported at all (a key without its secret authenticates nobody; the
new ledger's operator mints its own); their events stay in the event log.
`app/domain/transfer_export.py` writes this file, `app/domain/transfer_import.py` reads it.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from app.models import (
    Attribution,
    Claim,
    ClaimLink,
    ClaimTopic,
    Event,
    Publication,
    Review,
    Source,
    SourceMerge,
    SourceName,
    to_utc,
)
from app.models.base import rfc3339
from app.models.events import PackedJSON

FORMAT = "claimledger-export"
# Bump when a kind's columns change meaning or a kind is removed; adding a kind or a
# nullable column keeps older exports importable.
SCHEMA_VERSION = 1
CHUNK = 1000  # rows read (keyset pages) or written (one INSERT) at a time


@dataclass(frozen=True)
class Kind:
    """One kind of exported record: its name in the file and the table it comes from."""

    name: str
    table: sa.Table
    omit: tuple[str, ...] = ()  # columns never exported

    @property
    def columns(self) -> list[sa.Column]:
        return [c for c in self.table.columns if c.name not in self.omit]

    @property
    def key(self) -> list[sa.Column]:
        return list(self.table.primary_key.columns)

    @property
    def self_references(self) -> list[str]:
        """Columns pointing at the same table: set once all of the kind's rows are in."""
        return [fk.parent.name for fk in self.table.foreign_keys if fk.column.table is self.table]


def table_of(model: Any) -> sa.Table:
    """A model's table."""
    return model.__table__


# The whole ledger, in import order: each kind refers only to kinds above it (or to itself).
KINDS: list[Kind] = [
    Kind("source", table_of(Source)),
    Kind("source_name", table_of(SourceName)),
    Kind("claim", table_of(Claim)),
    Kind("claim_topic", table_of(ClaimTopic)),
    Kind("attribution", table_of(Attribution)),
    Kind("review", table_of(Review)),
    Kind("claim_link", table_of(ClaimLink)),
    Kind("publication", table_of(Publication)),
    Kind("source_merge", table_of(SourceMerge)),
    Kind("event", table_of(Event)),
]
BY_NAME = {kind.name: kind for kind in KINDS}
ORDER = {kind.name: n for n, kind in enumerate(KINDS)}


# Columns whose values are JSON as the file holds them (PackedJSON: stored deflated).
JSON_TYPES = (sa.JSON, PackedJSON)


def python_type(column: sa.Column) -> type | None:
    kind = column.type
    if isinstance(kind, sa.TypeDecorator):  # sqlmodel's UTCDateTime says `object`
        kind = kind.impl_instance
    try:
        return kind.python_type
    except NotImplementedError:
        return None


def to_json(column: sa.Column, value: Any) -> Any:
    """A column's value as the file holds it: times RFC 3339 UTC with microseconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value, str):  # a StrEnum
        return str(value.value)
    return value


def from_json(column: sa.Column, value: Any) -> Any:
    """The file's value back as the column's Python value; ValueError when it cannot be."""
    if value is None:
        if not column.nullable and not isinstance(column.type, JSON_TYPES):
            raise ValueError(f"{column.name} must not be null")
        return None
    kind = python_type(column)
    if isinstance(column.type, JSON_TYPES) or kind is dict:
        return value
    if kind is datetime:
        if not isinstance(value, str):
            raise ValueError(f"{column.name} must be an RFC 3339 time")
        return to_utc(datetime.fromisoformat(value))
    if kind is date:
        if not isinstance(value, str):
            raise ValueError(f"{column.name} must be an ISO date")
        return date.fromisoformat(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{column.name} must be true or false")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{column.name} must be an integer")
        return value
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{column.name} must be a string")
    return value


def dumps(value: Any) -> str:
    """JSON as the file holds it: keys sorted, no spaces, UTF-8 as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_of(kind: str, data_json: str) -> str:
    """A record's check: a short hash of its kind and its data's JSON."""
    return hashlib.blake2b(f"{kind}\n{data_json}".encode(), digest_size=8).hexdigest()


def record_line(kind: str, data: dict[str, Any]) -> tuple[str, str]:
    """One record's line (with its newline) and its check."""
    data_json = dumps(data)
    check = check_of(kind, data_json)
    return f'{{"kind":{dumps(kind)},"data":{data_json},"check":"{check}"}}\n', check


def is_export(first_line: str) -> bool:
    """Whether a file's first line is an export's header."""
    try:
        header = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("format") == FORMAT
