"""claim assignee

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-08 00:15:00

A claim can be handed to one checker (by key name): the desk's "my queue" lists the
claims assigned to the signed-in key, and `GET /v1/claims?assignee=` filters by it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0013'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('claim', sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=200),
                                     nullable=True))
    op.create_index('ix_claim_assignee', 'claim', ['assignee'])


def downgrade() -> None:
    op.drop_index('ix_claim_assignee', table_name='claim')
    with op.batch_alter_table('claim') as batch:
        batch.drop_column('assignee')
