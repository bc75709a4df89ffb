"""a resume re-slots in the background: campaigns.reslot_from

- `campaigns.reslot_from`, `campaigns.reslot_seconds`: set by the resume's gate write (the
  moment of the resume, the paused time) and cleared when the batches have moved every
  waiting row; meanwhile `fetch_due` counts a row due once its slot plus the paused time
  has passed, so sending resumes at once and no row goes out before its shifted slot.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reslot_from', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reslot_seconds', sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('reslot_seconds')
        batch_op.drop_column('reslot_from')
