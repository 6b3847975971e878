"""origin owners and source merges

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-08 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0015'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('origin_owner',
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('granted_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('granted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['key_id'], ['api_key.id'],
                            name=op.f('fk_origin_owner_key_id_api_key')),
    sa.PrimaryKeyConstraint('origin', name=op.f('pk_origin_owner'))
    )
    op.create_index(op.f('ix_origin_owner_key_id'), 'origin_owner', ['key_id'], unique=False)
    op.create_table('source_merge',
    sa.Column('duplicate_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('survivor_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('duplicate_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('merged_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('merged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('duplicate_id', name=op.f('pk_source_merge'))
    )
    op.create_index(op.f('ix_source_merge_survivor_id'), 'source_merge', ['survivor_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_source_merge_survivor_id'), table_name='source_merge')
    op.drop_table('source_merge')
    op.drop_index(op.f('ix_origin_owner_key_id'), table_name='origin_owner')
    op.drop_table('origin_owner')
