"""Idempotency records and the server instances that hold them."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import utcnow

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
