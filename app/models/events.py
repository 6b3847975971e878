"""The event log."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import OutputTime, utcnow

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
