"""event: changes and snapshot stored packed (deflated JSON), not as JSON text

Revision ID: 0016_compact_events
Revises: 0015
Create Date: 2026-12-08 04:00:00

Every claim event carries the whole claim as it then stood (`snapshot`, for `as_of`), and
that was the largest part of a ledger's bytes (bench P11). Both JSON columns become binary, each value
`app.models.events.pack_json_v1` of the same JSON: a version byte, then the compact JSON
deflated against a fixed dictionary of the keys and values claim events repeat. Readers
get the same values back (the column type unpacks them), so the feed, history, `as_of`,
webhooks and exports are unchanged.

Every event is rewritten, a chunk at a time in Python (bench P11 gives the sizes; a few
minutes a million events). SQLite recreates the table; PostgreSQL changes the columns' type in place, then
rewrites each row, which leaves the old row versions as dead space until a `VACUUM FULL
event` (run outside a migration: it cannot run in a transaction). A SQLite file keeps its
freed pages for later writes until a `VACUUM`. The downgrade writes JSON text again.
"""

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.models.events import pack_json_v1 as pack_json
from app.models.events import unpack_json

revision: str = '0016_compact_events'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000
_COLUMNS = ("id INTEGER NOT NULL, at DATETIME NOT NULL, actor VARCHAR(200) NOT NULL, "
            "action VARCHAR(64) NOT NULL, entity_type VARCHAR(32) NOT NULL, "
            "entity_id VARCHAR(100) NOT NULL, claim_id VARCHAR(100), changes {kind} NOT NULL, "
            "snapshot {kind}, CONSTRAINT pk_event PRIMARY KEY (id)")
_OTHER = "id, at, actor, action, entity_type, entity_id, claim_id"


def _as_json_text(value: Any) -> str | None:
    """JSON text again. SQLAlchemy's JSON type wrote a null snapshot as the text 'null';
    the upgrade made those SQL NULL, and they stay NULL here (readers see None either way)."""
    return None if value is None else json.dumps(value)


def _rows(conn: sa.Connection, table: str, columns: str) -> Any:
    last = None
    while True:
        where = "" if last is None else f" WHERE id > {int(last)}"
        rows = conn.execute(sa.text(
            f"SELECT {columns} FROM {table}{where} ORDER BY id LIMIT {CHUNK}")).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _recreate_sqlite(kind: str, convert: Callable[[Any], Any]) -> None:
    conn = op.get_bind()
    op.execute("DROP TABLE IF EXISTS event_new")  # left by an interrupted run
    op.execute(f"CREATE TABLE event_new ({_COLUMNS.format(kind=kind)})")
    insert = sa.text(f"INSERT INTO event_new ({_OTHER}, changes, snapshot) VALUES "
                     "(:id, :at, :actor, :action, :entity_type, :entity_id, :claim_id, "
                     ":changes, :snapshot)")
    for rows in _rows(conn, "event", f"{_OTHER}, changes, snapshot"):
        conn.execute(insert, [{**row._mapping, "changes": convert(unpack_json(row.changes)),
                               "snapshot": convert(unpack_json(row.snapshot))}
                              for row in rows])
    op.execute("DROP TABLE event")
    op.execute("ALTER TABLE event_new RENAME TO event")
    op.execute("CREATE INDEX ix_event_at ON event (at)")
    op.execute("CREATE INDEX ix_event_claim_id_id ON event (claim_id, id)")


def _rewrite_pg(convert: Callable[[Any], Any]) -> None:
    conn = op.get_bind()
    update = sa.text("UPDATE event SET changes = :changes, snapshot = :snapshot WHERE id = :id")
    for rows in _rows(conn, "event", "id, changes, snapshot"):
        conn.execute(update, [{"id": row.id, "changes": convert(unpack_json(row.changes)),
                               "snapshot": convert(unpack_json(row.snapshot))}
                              for row in rows])


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate_sqlite("BLOB", pack_json)
        return
    for column in ("changes", "snapshot"):
        op.execute(f"ALTER TABLE event ALTER COLUMN {column} TYPE bytea "
                   f"USING convert_to({column}::text, 'UTF8')")
    _rewrite_pg(pack_json)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate_sqlite("JSON", _as_json_text)
        return
    _rewrite_pg(lambda value: None if value is None else _as_json_text(value).encode())
    for column in ("changes", "snapshot"):
        op.execute(f"ALTER TABLE event ALTER COLUMN {column} TYPE json "
                   f"USING convert_from({column}, 'UTF8')::json")
