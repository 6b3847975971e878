"""claim_band: one index, its primary key (band, claim_id)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 10:00:00

Every new claim writes 16 band rows. On SQLite each was three B-tree inserts: the rowid
table, the primary key's index and the claim_id index, two of them at random places (band
keys and claim ids are random), so a batch of claims dirtied pages all over both indexes
and the writer spent a third of its time writing and checkpointing them. Now the table is
its primary key (WITHOUT ROWID) and the claim_id index is gone on both databases: a
claim's band rows are found from its text (app/domain/similarity.py, `text_bands`, a fixed
function of the text), which is how edits and deletes remove them.
SQLite recreates the table (a copy of every row, with the server stopped, as for every
migration).
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate_sqlite(options: str) -> None:
    op.execute("DROP TABLE IF EXISTS claim_band_new")  # left by an interrupted run
    op.execute("CREATE TABLE claim_band_new (band BIGINT NOT NULL, claim_id VARCHAR NOT NULL, "
               f"CONSTRAINT pk_claim_band PRIMARY KEY (band, claim_id)){options}")
    # In key order (the old primary key's index gives it): appended, not scattered.
    op.execute("INSERT INTO claim_band_new (band, claim_id) "
               "SELECT band, claim_id FROM claim_band ORDER BY band, claim_id")
    op.execute("DROP TABLE claim_band")
    op.execute("ALTER TABLE claim_band_new RENAME TO claim_band")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate_sqlite(" WITHOUT ROWID")  # dropping the table drops its claim_id index
    else:
        op.drop_index("ix_claim_band_claim_id", table_name="claim_band")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate_sqlite("")
    op.create_index("ix_claim_band_claim_id", "claim_band", ["claim_id"], unique=False)
