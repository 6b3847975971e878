"""publication: a claim's published verdict (issue 22)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 00:30:00

One row per published claim: the fact-check's URL and headline and the verdict as it stood
when it was published (status, rationale, review id), so a later review changes nothing
public until the claim is published again. A withdrawn verdict keeps its row, with
withdrawn_at set; the public lists read live rows newest first from one index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0012'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('publication',
    sa.Column('claim_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('headline', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('image_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('rationale', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('review_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('modified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('withdrawn_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('published_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claim.id'], name=op.f('fk_publication_claim_id_claim'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('claim_id', name=op.f('pk_publication'))
    )
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_publication_url'), ['url'], unique=False)
        batch_op.create_index('ix_publication_withdrawn_at_published_at', ['withdrawn_at', 'published_at', 'claim_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_index('ix_publication_withdrawn_at_published_at')
        batch_op.drop_index(batch_op.f('ix_publication_url'))
    op.drop_table('publication')
