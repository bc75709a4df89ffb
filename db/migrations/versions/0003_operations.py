"""operations: warmup ramps, dead-letter resolution, analytics buckets

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('senders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warmup_start', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('warmup_increment', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('warmup_ceiling', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('warmup_began_on', sa.Date(), nullable=True))

    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved_at', db.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', db.types.UTCDateTime(timezone=True), nullable=True))

    op.create_table('campaign_step_stats',
    sa.Column('campaign_id', Id, nullable=False),
    sa.Column('step_id', Id, nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('bucket_start', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('scheduled', sa.Integer(), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('skipped_by_reason', sa.JSON(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Integer(), nullable=False),
    sa.Column('replied', sa.Integer(), nullable=False),
    sa.Column('bounced', sa.Integer(), nullable=False),
    sa.Column('unsubscribed', sa.Integer(), nullable=False),
    sa.Column('computed_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_step_stats_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['step_id'], ['steps.id'], name=op.f('fk_campaign_step_stats_step_id_steps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'step_id', 'period', 'bucket_start', name=op.f('pk_campaign_step_stats'))
    )


def downgrade() -> None:
    op.drop_table('campaign_step_stats')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_column('purged_at')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_column('resolved_at')
    with op.batch_alter_table('senders', schema=None) as batch_op:
        batch_op.drop_column('warmup_began_on')
        batch_op.drop_column('warmup_ceiling')
        batch_op.drop_column('warmup_increment')
        batch_op.drop_column('warmup_start')
