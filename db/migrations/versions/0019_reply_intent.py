"""each reply's intent (model or rules), with the referral or return date it names

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intent', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('intent_details', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('intent_source', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_column('intent_source')
        batch_op.drop_column('intent_details')
        batch_op.drop_column('intent')
