"""bulk jobs: jobs.items and one job_items row per item (DESIGN J4)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.types

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('items', sa.Integer(), nullable=True))
    op.create_table(
        'job_items',
        sa.Column('id', ID, nullable=False),
        sa.Column('job_id', ID, nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('claim_token', sa.String(length=64), nullable=True),
        sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_items_job_id_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_job_items')),
        sa.UniqueConstraint('job_id', 'seq', name=op.f('uq_job_items_job_id_seq')),
    )
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.create_index('ix_job_items_claim', ['job_id', 'claim_token'], unique=False)
        batch_op.create_index('ix_job_items_job_status', ['job_id', 'status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_index('ix_job_items_job_status')
        batch_op.drop_index('ix_job_items_claim')
    op.drop_table('job_items')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('items')
