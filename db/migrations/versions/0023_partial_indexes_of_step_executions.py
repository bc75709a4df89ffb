"""step_executions: the indexes of columns empty at planning become partial

The provider's ids, the Message-ID, the thread and the fetch's claim are set only once a
row is fetched or sent; indexing their NULLs made every planned row cost four more index
entries.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_step_executions_provider_message_id': ['provider_message_id'],
    'ix_step_executions_message_key': ['message_key'],
    'ix_step_executions_sender_thread': ['sender_id', 'provider_thread_id'],
    'ix_step_executions_claim': ['step_id', 'claim_token'],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name='step_executions')
        present = sa.text(f'{columns[-1]} IS NOT NULL')
        op.create_index(name, 'step_executions', columns, postgresql_where=present, sqlite_where=present)


def downgrade() -> None:
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name='step_executions')
        op.create_index(name, 'step_executions', columns)
