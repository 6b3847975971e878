"""Webhook subscriptions and their deliveries."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import (
    StringConstraints,
    model_validator,
)
from sqlmodel import Field, SQLModel

from app.models.base import Input, OutputTime, Slug, Url, enum_column, new_id, not_null, utcnow

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
    status: DeliveryStatus = Field(sa_type=enum_column(16))
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
