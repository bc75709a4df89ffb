"""the workspace's default postal address for email campaigns (CAN-SPAM)

- `workspaces.postal_address`: used by an email campaign whose file gives none; every
  email's footer shows it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('postal_address', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_column('postal_address')
