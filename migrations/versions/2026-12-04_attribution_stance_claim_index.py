"""contested claims found from their disputing attributions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 04:30:00

`GET /v1/claims?contested=true` tested two EXISTS subqueries for every claim, newest
first, until it had a page: 3.9 s at 1,000,000 claims when few or none are contested.
(stance, claim_id) lists the claims that some source disputes or denies straight from the
index; only those are checked for a source that backs them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_attribution_stance_claim_id', 'attribution', ['stance', 'claim_id'])


def downgrade() -> None:
    op.drop_index('ix_attribution_stance_claim_id', table_name='attribution')
