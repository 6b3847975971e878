"""Origin owners: which key may write claims of an origin."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.models.base import Input, OutputTime, utcnow

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
