"""idempotency, near-duplicate bands and full-text search

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:54:38.147299
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('idempotency_record',
    sa.Column('api_key_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.JSON(), nullable=False),
    sa.Column('response_headers', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('api_key_id', 'key', name=op.f('pk_idempotency_record'))
    )
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_record_created_at'), ['created_at'], unique=False)

    op.create_table('claim_band',
    sa.Column('band', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('claim_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claim.id'], name=op.f('fk_claim_band_claim_id_claim'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('band', 'claim_id', name=op.f('pk_claim_band'))
    )
    with op.batch_alter_table('claim_band', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_band_claim_id'), ['claim_id'], unique=False)

    create_search_index()


def create_search_index() -> None:
    """claim_search: FTS5 on SQLite (with a rowid map), tsvector + GIN on PostgreSQL."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TABLE claim_search ("
            " claim_id VARCHAR PRIMARY KEY REFERENCES claim(id) ON DELETE CASCADE,"
            " document TSVECTOR NOT NULL)"
        )
        op.execute("CREATE INDEX claim_search_document_gin ON claim_search USING GIN (document)")
    else:
        op.execute(
            "CREATE TABLE claim_search_doc ("
            " rowid INTEGER PRIMARY KEY,"
            " claim_id VARCHAR NOT NULL UNIQUE REFERENCES claim(id) ON DELETE CASCADE)"
        )
        op.execute(
            "CREATE VIRTUAL TABLE claim_search USING fts5("
            "body, tokenize = 'porter unicode61 remove_diacritics 2')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE claim_search")
    else:
        op.execute("DROP TABLE claim_search")
        op.execute("DROP TABLE claim_search_doc")
    with op.batch_alter_table('claim_band', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_band_claim_id'))

    op.drop_table('claim_band')
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_record_created_at'))

    op.drop_table('idempotency_record')
