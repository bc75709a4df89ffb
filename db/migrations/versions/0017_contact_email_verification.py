"""the last email verification of each contact (status, reasons, when)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.types

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('email_reasons', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('email_checked_at', db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('email_checked_at')
        batch_op.drop_column('email_reasons')
        batch_op.drop_column('email_status')
