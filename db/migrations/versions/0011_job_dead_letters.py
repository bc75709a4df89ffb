"""dead letters of jobs: a letter names a job, or a campaign's execution

- `dead_letters.job_id` (a failed job; `outbound dlq` handles it like a campaign's letter).
- `dead_letters.execution_id` and `campaign_id` become optional (a job's letter has neither).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True)
        )
        batch_op.alter_column('execution_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=True)  # fmt: skip
        batch_op.alter_column('campaign_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=True)  # fmt: skip
        batch_op.create_index(batch_op.f('ix_dead_letters_job_id'), ['job_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_dead_letters_job_id_jobs'), 'jobs', ['job_id'], ['id'], ondelete='CASCADE'
        )


def downgrade() -> None:
    op.execute("DELETE FROM dead_letters WHERE job_id IS NOT NULL")
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_dead_letters_job_id_jobs'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_dead_letters_job_id'))
        batch_op.alter_column('campaign_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=False)  # fmt: skip
        batch_op.alter_column('execution_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=False)  # fmt: skip
        batch_op.drop_column('job_id')
