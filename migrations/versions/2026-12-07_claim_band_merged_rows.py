"""claim_band: drop the rows of claims merged into another

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:00:00

A merge now deletes the duplicate's band rows (app/domain/links.py `merge_claims`): a merged
claim is never a near-duplicate candidate again and cannot be edited, yet its rows took
candidate places (the first holders of a band) from live claims and were only dropped in
Python afterwards. This removes the rows of claims merged before that. One pass over
claim_band (no claim_id index since 0010), with the merged claims' ids looked up as it
goes: 26 ms for 93,000 rows on SQLite, so some 4-5 s at 1,000,000 claims. The data
only, so downgrading changes nothing (the rows are not needed by any version: candidates
that were merged are dropped as before).
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM claim_band WHERE claim_id IN "
               "(SELECT id FROM claim WHERE duplicate_of IS NOT NULL)")


def downgrade() -> None:
    pass
