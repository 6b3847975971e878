"""claim_band without its foreign key

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:00:00

Every new claim writes 16 band rows, and the foreign key checked each against `claim`:
on PostgreSQL a trigger per row, 2.1 of 5.7 ms of a 32-claim batch's band insert. Band
rows are written only with their claim (app/domain/ingest.py, app/domain/similarity.py), and
claims.delete_claim deletes them with it, as the cascade did; a band row whose claim is
gone would only be a candidate that similarity drops (its text is not found).
SQLite recreates the table (a copy of every row: about a minute at 1,000,000 claims, with
the server stopped, as for every migration).
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('claim_band', schema=None) as batch_op:
        batch_op.drop_constraint('fk_claim_band_claim_id_claim', type_='foreignkey')


def downgrade() -> None:
    op.execute("DELETE FROM claim_band WHERE claim_id NOT IN (SELECT id FROM claim)")
    with op.batch_alter_table('claim_band', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_claim_band_claim_id_claim', 'claim', ['claim_id'], ['id'],
                                    ondelete='CASCADE')
