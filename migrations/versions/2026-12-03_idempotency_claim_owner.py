"""idempotency claims know their owner; instance heartbeats

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:45:00

A pending idempotency claim whose server died (SIGKILL, power cut) blocked retries for
idempotency_pending_seconds. Each server instance now keeps a heartbeat row in
`instance`, and a claim records its owner (`instance_id`) and its own `claim_token`: a
claim whose owner has stopped beating is taken over at once, and the token stops a
request whose claim was taken over from storing a second response. Existing claims keep
NULL owners and fall back to the age-based takeover.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('instance',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance'))
    )
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))
        batch_op.add_column(sa.Column('claim_token', sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.drop_column('claim_token')
        batch_op.drop_column('instance_id')
    op.drop_table('instance')
