"""mailbox pause: rate limits and provider 5xx counted per sender

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('senders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('throttled_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('throttled_since', db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('senders', schema=None) as batch_op:
        batch_op.drop_column('throttled_since')
        batch_op.drop_column('throttled_count')
