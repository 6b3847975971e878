"""Opaque cursors and the page shape every list returns. No FastAPI here."""

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel

from app.errors import BadRequest
from app.models.base import to_utc

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def page_json(items: list[bytes], next_cursor: str | None) -> bytes:
    """A page whose items are already JSON, as `Page` would serialise it."""
    return b'{"items":[' + b",".join(items) + b'],"next_cursor":' + \
        json.dumps(next_cursor).encode() + b"}"


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, length: int, types: tuple[type, ...] | None = None) -> list[Any]:
    """The parts of a cursor; `types` checks each, since a forged one reaches the SQL."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("the cursor is not one this service issued") from None
    if not isinstance(parts, list) or len(parts) != length:
        raise BadRequest("the cursor is not one this service issued")
    if types is not None and not all(type(p) is t for p, t in zip(parts, types, strict=True)):
        raise BadRequest("the cursor is not one this service issued")
    return parts


def decode_position(cursor: str | None) -> int:
    """The event id a feed cursor stands for (0: from the start)."""
    if not cursor:
        return 0
    value = decode_cursor(cursor, length=1)[0]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
        raise BadRequest("the cursor is not one this service issued")
    return value


# --- (time, id) keyset pages: lists ordered by a time column, ties broken by id ---------


def encode_time_cursor(at: datetime, row_id: str, *tail: Any) -> str:
    """The cursor of a page ending at the row (`at`, `row_id`); `tail`: what else the list
    pins (its sort order)."""
    return encode_cursor(to_utc(at).isoformat(), row_id, *tail)


def decode_time_cursor(cursor: str, *tail: type) -> tuple[Any, ...]:
    """(time, id, *tail) from a cursor `encode_time_cursor` made; `tail` the types of the
    parts after them. 400 if this service did not issue it."""
    at, row_id, *rest = decode_cursor(cursor, length=2 + len(tail), types=(str, str, *tail))
    try:
        return (datetime.fromisoformat(at), row_id, *rest)
    except ValueError:
        raise BadRequest("the cursor is not one this service issued") from None


def after_position(time_column: Any, id_column: Any, at: datetime, row_id: str, *,
                   descending: bool) -> sa.ColumnElement[bool]:
    """The rows after (`at`, `row_id`) in (time, id) order, newest first if `descending`."""
    if descending:
        return sa.or_(time_column < at, sa.and_(time_column == at, id_column < row_id))
    return sa.or_(time_column > at, sa.and_(time_column == at, id_column > row_id))
