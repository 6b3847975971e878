"""The event log."""

import json
import zlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.base import OutputTime, utcnow

# --- packed JSON --------------------------------------------------------------

# What most event bodies repeat: the keys of a claim's representation and of the changes
# events carry, in the order they are written, with their commonest values. Deflate finds
# them here instead of in the value, so a new claim's snapshot keeps little more than its
# own text, ids, fingerprint and times (bench P11). Stored values depend on these exact
# bytes: never edit PACK_DICTIONARY_V1; a different dictionary is a new version byte (and a
# migration if the old one is to go).
PACK_DICTIONARY_V1 = (
    b'{"name":"","kind":"other","country":null,"homepage":null,"description":null,'
    b'"reliability":"F","id":"src_","aliases":[],"affiliation":null,"version":1,'
    b'{"url":"","event_types":["*"],"topics":[],"active":true}{"name":"","role":"ingester"}'
    b'{"origin":"","owner":""}{"deleted":true}{"assignee":{"from":null,"to":""}}'
    b'{"status":{"from":"unverified","to":"in_review"},"review_id":"rev_"}'
    b'"mostly_true","mixed","mostly_false","misleading","unverifiable","true","false",'
    b'"disputes","denies","supports","reports","government","military","media","ngo",'
    b'"text":{"from":"","to":""},"topics":{"from":[],"to":[]},"places":{"from":[],"to":[]}'
    b'"current_review":{"id":"rev_","claim_id":"clm_","from_status":"in_review",'
    b'"to_status":"false","rationale":null,"evidence_urls":[],"reviewer":"","created_at":"'
    b'"links":[{"id":"lnk_","claim_id":"clm_","target_id":"clm_","kind":"related",'
    b'"note":null,"created_by":"","created_at":"'
    b'{"attributions_added":1,"via":"ingest"}{"attribution_id":"att_","source_id":"src_"'
    b'{"text":"","language":"en","places":[],"period_start_date":null,'
    b'"period_end_date":null,"id":"clm_","first_stated_at":null,"origin":null,'
    b'"external_id":null,"fingerprint":"","version":1,"status":"unverified",'
    b'"duplicate_of":null,"assignee":null,"created_by":"","created_at":"2026-12-08T00:00:'
    b'00.000000Z","updated_at":"2026-12-08T00:00:00.000000Z","topics":[],"attributions":'
    b'[{"stance":"asserts","quote":null,"citation_url":"https://","citation_title":null,'
    b'"citation_publisher":null,"citation_published_date":null,"credibility":null,'
    b'"note":null,"id":"att_","claim_id":"clm_","stated_at":null,"created_by":"",'
    b'"created_at":"2026-12-08T00:00:00.000000Z","source":{"id":"src_","name":"",'
    b'"kind":"other","reliability":"F"}}],"links":[],"current_review":null,'
    b'"contested":false}{"text":"","via":"ingest"}'
)
_VERSION_1 = b"\x01"


class JsonText(str):
    """A value already written as JSON text (`json.dumps` of it): stored as the JSON it
    spells, not as a JSON string. A batch's rows that differ in a field or two are
    serialised from one template instead of one `json.dumps` a row (bench P9: 100,000
    `source.created` events); app/fastpath/bulk.py inserts it as it is."""

    __slots__ = ()


def pack_json_v1(value: Any) -> bytes | None:
    """A JSON value as stored: a version byte, then its compact JSON deflated against the
    version's dictionary. None stays None (SQL NULL). Migration 0016 writes this version
    whatever `pack_json` becomes later."""
    if value is None:
        return None
    text = value if isinstance(value, JsonText) else \
        json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY,
                              PACK_DICTIONARY_V1)
    return _VERSION_1 + packer.compress(text.encode("utf-8", "surrogatepass")) + packer.flush()


pack_json = pack_json_v1  # what new rows are written with


def unpack_json(stored: bytes | str | None) -> Any:
    """`pack_json`'s value back; also reads JSON text as the column held it before
    migration 0016 (a downgrade writes it again)."""
    if stored is None:
        return None
    if isinstance(stored, str):
        return json.loads(stored)
    stored = bytes(stored)
    if stored[:1] == _VERSION_1:
        unpacker = zlib.decompressobj(-15, PACK_DICTIONARY_V1)
        text = unpacker.decompress(stored[1:]) + unpacker.flush()
        return json.loads(text.decode("utf-8", "surrogatepass"))
    return json.loads(stored.decode("utf-8", "surrogatepass"))


class PackedJSON(sa.TypeDecorator):
    """A JSON value stored deflated (`pack_json`): BLOB on SQLite, bytea on PostgreSQL.

    Readers see the same dicts as from a JSON column; nothing queries inside these values
    in SQL. A null value is SQL NULL."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> bytes | None:
        return pack_json(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return unpack_json(value)

    @property
    def python_type(self) -> type:
        return dict


# --- event --------------------------------------------------------------------


class Event(SQLModel, table=True):
    """The append-only change log: audit trail, live feed and source of `as_of` history.

    `changes` and `snapshot` are stored packed (migration 0016): the snapshots were the
    largest part of a ledger's bytes on disk (bench P11)."""

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
    changes: dict[str, Any] = Field(default_factory=dict, sa_type=PackedJSON)
    snapshot: dict[str, Any] | None = Field(default=None, sa_type=PackedJSON)


class EventPublic(SQLModel):
    id: int
    at: OutputTime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    claim_id: str | None
    changes: dict[str, Any]
