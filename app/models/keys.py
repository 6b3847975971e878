"""API keys and the per-key rate limit windows."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.models.base import Input, Label, OutputTime, Role, enum_column, new_id, utcnow

# --- api key ------------------------------------------------------------------


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: str = Field(default_factory=lambda: new_id("key"), primary_key=True)
    name: str = Field(max_length=200)
    role: Role = Field(sa_type=enum_column())
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


class RateLimitWindow(SQLModel, table=True):
    """Requests per key per minute, shared by the workers of a PostgreSQL deployment."""

    __tablename__ = "rate_limit_window"
    key_id: str = Field(primary_key=True, max_length=100)
    window_start: datetime = Field(primary_key=True)
    hits: int = 0
