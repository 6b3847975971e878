"""rate limit windows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:00:28.412156
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rate_limit_window',
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('window_start', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key_id', 'window_start', name=op.f('pk_rate_limit_window'))
    )


def downgrade() -> None:
    op.drop_table('rate_limit_window')
