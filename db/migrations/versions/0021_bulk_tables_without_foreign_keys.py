"""enrollments and step_executions without foreign keys (decision 0037)

Both are written a campaign's worth at a time from the rows they refer to; the per-row
foreign-key checks were most of the cost (about 3 µs per key and row: 23 s of a
million-contact enrollment).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

KEYS = {
    'enrollments': [
        ('fk_enrollments_campaign_id_campaigns', 'campaign_id', 'campaigns', 'CASCADE'),
        ('fk_enrollments_contact_id_contacts', 'contact_id', 'contacts', None),
        ('fk_enrollments_email_sender_id_senders', 'email_sender_id', 'senders', None),
        ('fk_enrollments_sms_sender_id_senders', 'sms_sender_id', 'senders', None),
        ('fk_enrollments_voicemail_sender_id_senders', 'voicemail_sender_id', 'senders', None),
    ],
    'step_executions': [
        ('fk_step_executions_campaign_id_campaigns', 'campaign_id', 'campaigns', 'CASCADE'),
        ('fk_step_executions_step_id_steps', 'step_id', 'steps', 'CASCADE'),
        ('fk_step_executions_contact_id_contacts', 'contact_id', 'contacts', None),
        ('fk_step_executions_sender_id_senders', 'sender_id', 'senders', None),
    ],
}


def upgrade() -> None:
    for table, keys in KEYS.items():
        with op.batch_alter_table(table) as batch:
            for name, _, _, _ in keys:
                batch.drop_constraint(name, type_='foreignkey')


def downgrade() -> None:
    for table, keys in KEYS.items():
        with op.batch_alter_table(table) as batch:
            for name, column, referred, ondelete in keys:
                batch.create_foreign_key(name, referred, [column], ['id'], ondelete=ondelete)
