"""Sources, their names and aliases, and source merges."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import (
    Country,
    Input,
    Label,
    LongText,
    Name,
    OutputTime,
    Reliability,
    SourceKind,
    Url,
    enum_column,
    new_id,
    not_null,
    utcnow,
)

# --- source -------------------------------------------------------------------


class SourceBase(SQLModel):
    name: Name
    kind: SourceKind = Field(default=SourceKind.other, sa_type=enum_column())
    country: Country | None = Field(default=None, sa_type=sa.String(2))
    homepage: Url | None = None
    description: LongText | None = None
    reliability: Reliability = Field(default=Reliability.F, sa_type=enum_column(1))


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
