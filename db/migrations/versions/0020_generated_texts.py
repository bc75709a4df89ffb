"""texts a model wrote per contact and campaign (`{{ ai.<name> }}`)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.types

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'generated_texts',
        sa.Column('id', ID, nullable=False),
        sa.Column('campaign_id', ID, nullable=False),
        sa.Column('contact_id', ID, nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('text', sa.Text(), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('model', sa.String(length=100), nullable=True),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), nullable=False),
        sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['campaign_id'], ['campaigns.id'], name=op.f('fk_generated_texts_campaign_id_campaigns'), ondelete='CASCADE'
        ),
        sa.ForeignKeyConstraint(
            ['contact_id'], ['contacts.id'], name=op.f('fk_generated_texts_contact_id_contacts'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_generated_texts')),
        sa.UniqueConstraint('campaign_id', 'contact_id', 'name', name=op.f('uq_generated_texts_campaign_id_contact_id_name')),
    )
    with op.batch_alter_table('generated_texts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generated_texts_contact_id'), ['contact_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('generated_texts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generated_texts_contact_id'))
    op.drop_table('generated_texts')
