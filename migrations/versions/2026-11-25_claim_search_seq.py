"""search window newest first on PostgreSQL

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 19:15:00

A search ranks a window of its matches (app/domain/search.py). On PostgreSQL that window was the
first matches the GIN index yielded: heap order, so the oldest claims, and a claim
re-indexed by any change moved out of it. `seq` numbers claim_search rows as they are
first indexed (an upsert keeps it), and the window is the matches with the highest seq.
SQLite needs nothing: FTS5 rowids already grow.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE claim_search ADD COLUMN seq BIGSERIAL")
        op.execute("CREATE INDEX claim_search_seq ON claim_search (seq)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX claim_search_seq")
        op.execute("ALTER TABLE claim_search DROP COLUMN seq")
