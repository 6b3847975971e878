"""Opaque cursors and the page shape every list returns. No FastAPI here."""

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from app.errors import BadRequest

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
