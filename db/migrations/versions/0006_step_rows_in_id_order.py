"""step rows in id order: (step_id, id)

Replanning a later step from a cursor reads the rows its previous step added since the
last pass (ids above the cursor). The key alone would walk every row of every step added
since; with this index the read is the new rows of that one step (docs/decisions/0016).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:10:00
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('step_executions', schema=None) as batch_op:
        batch_op.create_index('ix_step_executions_step_rows', ['step_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('step_executions', schema=None) as batch_op:
        batch_op.drop_index('ix_step_executions_step_rows')
