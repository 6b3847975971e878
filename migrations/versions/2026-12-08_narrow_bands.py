"""claim_band: 10 band keys of 31 bits a claim, not 16 of 63

Revision ID: 0016b_narrow_bands
Revises: 0016_compact_events
Create Date: 2026-12-08 04:10:00

The near-duplicate band rows were a large share of a ledger's bytes (bench P11). A claim now
keeps 10 bands (app/domain/similarity.py: near duplicates at word overlap 0.5 still share
one nine times in ten and more; bench/RESULTS.md, "P11"), each key cut to 31 bits: 4 bytes
on SQLite, PostgreSQL's `integer`. Keys are a fixed function of a claim's text, so every row is
computed again, for each claim not merged into another (a merge drops its rows), a chunk
of claims at a time (a few minutes a million claims). SQLite recreates the table; PostgreSQL
empties it and changes the column's type. The downgrade computes the 16 keys of 63 bits
again. The band count and key width are written out here, not read from similarity.BANDS;
the word hashing and permutations are similarity's (`bands(..., count=, mask=)`), pinned by
tests/test_similar.py's fixed keys for both schemes, which must keep passing for this
migration to compute the same keys.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.domain.similarity import bands, words

revision: str = '0016b_narrow_bands'
down_revision: str | None = '0016_compact_events'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000
NEW = {"count": 10, "mask": (1 << 31) - 1, "type": "INTEGER"}
OLD = {"count": 16, "mask": (1 << 63) - 1, "type": "BIGINT"}


def _fill(scheme: dict) -> None:
    conn = op.get_bind()
    insert = sa.text("INSERT INTO claim_band (band, claim_id) VALUES (:band, :claim_id)")
    last = ""
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, text FROM claim WHERE duplicate_of IS NULL AND id > :last "
            f"ORDER BY id LIMIT {CHUNK}"), {"last": last}).all()
        if not rows:
            return
        values = [{"band": band, "claim_id": claim_id} for claim_id, text in rows
                  for band in dict.fromkeys(bands(words(text), count=scheme["count"],
                                                  mask=scheme["mask"]))]
        if values:
            conn.execute(insert, values)
        last = rows[-1][0]


def _change(scheme: dict) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE claim_band")
        op.execute(f"CREATE TABLE claim_band (band {scheme['type']} NOT NULL, claim_id VARCHAR "
                   "NOT NULL, CONSTRAINT pk_claim_band PRIMARY KEY (band, claim_id)) "
                   "WITHOUT ROWID")
    else:
        op.execute("TRUNCATE claim_band")
        op.execute(f"ALTER TABLE claim_band ALTER COLUMN band TYPE {scheme['type']}")
    _fill(scheme)


def upgrade() -> None:
    _change(NEW)


def downgrade() -> None:
    _change(OLD)
