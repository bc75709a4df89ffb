"""claims that survive their own retry, the moment a row entered SENDING, why retries stopped

- `step_executions.claim_token`: which `fetch_due` claimed a QUEUED row (workflow run and
  fetch sequence), so a retry of that fetch gets the same rows back (DESIGN R18).
- `step_executions.sending_since`: when the row passed the gate into SENDING; a provider
  look-up on retry ("was it sent?") searches from there, so an earlier step's message to
  the same number can never stand in for this one.
- `dead_letters.retry_state`: why retries stopped (attempts exhausted, non-retryable,
  timeout), apart from how many attempts there were.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('step_executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('sending_since', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_step_executions_claim', ['step_id', 'claim_token'], unique=False)
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_state', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_column('retry_state')
    with op.batch_alter_table('step_executions', schema=None) as batch_op:
        batch_op.drop_index('ix_step_executions_claim')
        batch_op.drop_column('sending_since')
        batch_op.drop_column('claim_token')
