"""The data model. Every row belongs to a workspace so tenants need no later rewrite."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
DEFAULT_WORKSPACE_ID = 1
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only auto-increments INTEGER keys


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The default for email campaigns whose file gives no `postal_address:` (CAN-SPAM).
    postal_address: Mapped[str | None] = mapped_column(String(500))


def _workspace() -> Mapped[int]:
    return mapped_column(ForeignKey("workspaces.id"), default=DEFAULT_WORKSPACE_ID, index=True)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "email"),
        Index("ix_contacts_workspace_phone", "workspace_id", "phone"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(20))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stopped_reason: Mapped[str | None] = mapped_column(String(32))
    stopped_at: Mapped[datetime | None]
    soft_bounces: Mapped[int] = mapped_column(default=0)
    # The last verification of `email` (domain.email_verdict): none until one ran.
    email_status: Mapped[str | None] = mapped_column(String(16))
    email_reasons: Mapped[list[str] | None] = mapped_column(JSON)
    email_checked_at: Mapped[datetime | None]
    # What enrichment providers said, by provider: {"at": ..., "values": {...}}.
    enrichment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LeadGroup(Base):
    __tablename__ = "lead_groups"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    name: Mapped[str] = mapped_column(String(200))


class LeadGroupMember(Base):
    __tablename__ = "lead_group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("lead_groups.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True)


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "value"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Sender(Base):
    __tablename__ = "senders"
    __table_args__ = (UniqueConstraint("workspace_id", "channel", "address"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))
    provider: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    daily_limit: Mapped[int]
    sends_today: Mapped[int] = mapped_column(default=0)
    quota_day: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(500))
    # Rate limits and provider 5xx counted in a short window; enough of them set
    # `paused_until` and the mailbox sends nothing until then (R12, db/mailboxes.py).
    paused_until: Mapped[datetime | None]
    throttled_count: Mapped[int] = mapped_column(default=0, server_default="0")
    throttled_since: Mapped[datetime | None]
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)  # Fernet token, never logged
    # Warmup ramp: while set, the daily warmup cron recomputes `daily_limit` from the ramp and
    # the days since `warmup_began_on` (a late or repeated run gives the same limit, R6).
    warmup_start: Mapped[int | None]
    warmup_increment: Mapped[int | None]
    warmup_ceiling: Mapped[int | None]
    warmup_began_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="DRAFT", index=True)
    lifecycle_version: Mapped[int] = mapped_column(default=0)
    # While a resume's batches re-slot the waiting rows: the resume's moment; NULL once all
    # have moved. Meanwhile `db.planning.fetch_due` counts a slot due `reslot_seconds` late.
    reslot_from: Mapped[datetime | None]
    reslot_seconds: Mapped[float | None]  # the paused time the batches add to each waiting slot
    launched_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class CampaignLeadGroup(Base):
    __tablename__ = "campaign_lead_groups"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("lead_groups.id"), primary_key=True)


class CampaignSender(Base):
    __tablename__ = "campaign_senders"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"), primary_key=True)


class CampaignPause(Base):
    """A pause interval; resumed_at is NULL while the campaign is paused."""

    __tablename__ = "campaign_pauses"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    paused_at: Mapped[datetime]
    resumed_at: Mapped[datetime | None]


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    position: Mapped[int]
    channel: Mapped[str] = mapped_column(String(16))
    day: Mapped[int] = mapped_column(default=0)
    wait_days: Mapped[int] = mapped_column(default=0)
    wait_seconds: Mapped[int] = mapped_column(default=0)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    say: Mapped[str | None] = mapped_column(Text)
    audio_url: Mapped[str | None] = mapped_column(Text)
    new_thread: Mapped[bool] = mapped_column(Boolean, default=False)
    speak_to_humans: Mapped[bool] = mapped_column(Boolean, default=False)
    start_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Enrollment(Base):
    """Written a campaign's worth at a time, from the very rows it refers to: no foreign
    keys, whose per-row checks were most of a million-contact enrollment (decision 0037)."""

    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("campaign_id", "contact_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Id)  # campaigns.id
    contact_id: Mapped[int] = mapped_column(Id, index=True)  # contacts.id
    email_sender_id: Mapped[int | None] = mapped_column(Id)  # senders.id
    sms_sender_id: Mapped[int | None] = mapped_column(Id)  # senders.id
    voicemail_sender_id: Mapped[int | None] = mapped_column(Id)  # senders.id
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[datetime]


def _partial(name: str, *columns: str) -> Index:
    """An index of the rows whose last column is set (both databases' partial indexes): a
    look-up by a value implies it is not NULL, so the index serves it."""
    present = text(f"{columns[-1]} IS NOT NULL")
    return Index(name, *columns, postgresql_where=present, sqlite_where=present)


class StepExecution(Base):
    """One message: the unique (step, contact) pair is the idempotency key. Planned a
    campaign's worth at a time from enrollments: no foreign keys (decision 0037)."""

    __tablename__ = "step_executions"
    __table_args__ = (
        UniqueConstraint("step_id", "contact_id"),
        Index("ix_step_executions_due", "step_id", "status", "scheduled_for", "id"),  # due rows in slot order
        Index("ix_step_executions_step_rows", "step_id", "id"),  # a step's rows added since a planning cursor
        Index("ix_step_executions_sender_time", "sender_id", "scheduled_for"),
        Index("ix_step_executions_contact_status", "contact_id", "status"),
        # The columns below are empty when a row is planned: partial indexes cost nothing then.
        _partial("ix_step_executions_provider_message_id", "provider_message_id"),  # delivery callbacks
        _partial("ix_step_executions_message_key", "message_key"),  # replies and bounces by Message-ID
        _partial("ix_step_executions_sender_thread", "sender_id", "provider_thread_id"),  # replies by thread
        _partial("ix_step_executions_claim", "step_id", "claim_token"),  # a fetch's retry finds its own claim
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Id, index=True)  # campaigns.id
    step_id: Mapped[int] = mapped_column(Id)  # steps.id
    contact_id: Mapped[int] = mapped_column(Id)  # contacts.id
    sender_id: Mapped[int | None] = mapped_column(Id)  # senders.id
    status: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(64))  # the fetch that made it QUEUED (R18)
    attempts: Mapped[int] = mapped_column(default=0)
    sending_since: Mapped[datetime | None]  # when it passed the gate: provider look-ups start here
    message_key: Mapped[str | None] = mapped_column(String(255))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    provider_thread_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    delivery_status: Mapped[str | None] = mapped_column(String(32))  # from provider callbacks
    delivery_error_code: Mapped[str | None] = mapped_column(String(32))
    answered_by: Mapped[str | None] = mapped_column(String(32))  # voicemail: Twilio AMD outcome
    delivery_updated_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # A campaign's letter names its execution and campaign; a job's letter its job.
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("step_executions.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    error_type: Mapped[str] = mapped_column(String(100))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    retry_state: Mapped[str | None] = mapped_column(String(40))  # why retries stopped
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]  # when `dlq retry` / `dlq discard` closed it


class MailboxSync(Base):
    """Where the inbound sync of one mailbox stands (Gmail `historyId`)."""

    __tablename__ = "mailbox_syncs"
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id", ondelete="CASCADE"), primary_key=True)
    history_id: Mapped[str | None] = mapped_column(String(32))
    last_synced_at: Mapped[datetime | None]
    last_full_sync_at: Mapped[datetime | None]
    messages_seen: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)


class GeneratedText(Base):
    """A text a model wrote for one contact of one campaign (`{{ ai.<name> }}`); `text` is
    None when the model could not write it (`error` says why): the template's default goes out."""

    __tablename__ = "generated_texts"
    __table_args__ = (UniqueConstraint("campaign_id", "contact_id", "name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))
    model: Mapped[str | None] = mapped_column(String(100))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    latency_ms: Mapped[int | None]  # None: no call answered (a prompt that did not render, a refused request)
    created_at: Mapped[datetime]


class InboundMessage(Base):
    """A message that came back: an email in a synced mailbox or an SMS to one of our numbers."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_message_id"),
        Index("ix_inbound_messages_received", "received_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    channel: Mapped[str] = mapped_column(String(16))
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("senders.id", ondelete="SET NULL"), index=True)
    provider_message_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str | None] = mapped_column(String(255))
    rfc_message_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    from_address: Mapped[str | None] = mapped_column(String(320))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    purged_at: Mapped[datetime | None]  # when retention cleared the bodies and headers
    classification: Mapped[str] = mapped_column(String(32))
    # A reply's intent (domain.reply_intent), its referral or return date, and who decided.
    intent: Mapped[str | None] = mapped_column(String(32))
    intent_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    intent_source: Mapped[str | None] = mapped_column(String(100))
    bounced_recipient: Mapped[str | None] = mapped_column(String(320))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("step_executions.id", ondelete="SET NULL"))
    received_at: Mapped[datetime]
    created_at: Mapped[datetime]


class CampaignStepStats(Base):
    """Analytics buckets per campaign, step and hour or day (UTC), recomputed and upserted by
    the analytics schedule (never incremented, R16) and kept when retention purges details."""

    __tablename__ = "campaign_step_stats"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # "hour" | "day"
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    scheduled: Mapped[int] = mapped_column(default=0)
    sent: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    skipped_by_reason: Mapped[dict[str, Any]] = mapped_column(default=dict)
    failed: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[int] = mapped_column(default=0)
    replied: Mapped[int] = mapped_column(default=0)
    bounced: Mapped[int] = mapped_column(default=0)
    unsubscribed: Mapped[int] = mapped_column(default=0)
    computed_at: Mapped[datetime]


class Job(Base):
    """One job of a queue (DESIGN J1, J2): the database holds its data, state and result;
    the workflow `job-<queue>-<job id>` carries only this row's id."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("queue", "job_key"),  # the same job id twice is one job
        Index("ix_jobs_queue_status", "queue", "status"),  # stats per queue, one grouped query
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    queue: Mapped[str] = mapped_column(String(40))
    job_key: Mapped[str] = mapped_column(String(200))  # the producer's job id (or one made for it)
    name: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))  # schemas.jobs.JobStatus
    priority: Mapped[int]
    attempts_allowed: Mapped[int]
    attempts_made: Mapped[int] = mapped_column(default=0)
    progress: Mapped[Any] = mapped_column(JSON, nullable=True)  # a number or an object, as in BullMQ
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    run_after: Mapped[datetime | None]  # a delayed job starts then
    items: Mapped[int | None]  # a bulk job: how many items (`job_items`)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ApiKey(Base):
    """A bearer key of the app's API: only its SHA-256 is stored, the key is shown once."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))  # shown by `api-keys list`
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class JobItem(Base):
    """One item of a bulk job (DESIGN J4): the bulk workflow walks these with the step
    workflow's pattern, the table as the cursor; each has its own status and retries."""

    __tablename__ = "job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "seq"),
        Index("ix_job_items_job_status", "job_id", "status", "id"),  # the next waiting items, in order
        Index("ix_job_items_claim", "job_id", "claim_token"),  # a claim's retry finds its own items
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int]  # its line in the items file, from 1
    data: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))  # waiting | active | completed | failed
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    not_before: Mapped[datetime | None]  # a waiting item's retry time (batches retry through the table)
    updated_at: Mapped[datetime]


class Event(Base):
    """An event for the app (DESIGN W1), written in the same transaction as the change it
    reports. `position` is given once the row is committed, in the order events became
    visible (`db.events.assign_positions`): delivery reads positions as its cursor, so an
    event whose transaction committed late is never passed over."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    position: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    type: Mapped[str] = mapped_column(String(48))
    data: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]


class WebhookEndpoint(Base):
    """Where the app hears events (DESIGN W3): a URL, the event types it wants (none: all),
    its signing secret (encrypted with the deployment key; the previous one signs too until
    `previous_secret_until`), and its cursor: the last event position it has taken on."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workspace_id: Mapped[int] = _workspace()
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(Text)  # encrypted
    previous_secret: Mapped[str | None] = mapped_column(Text)  # encrypted
    previous_secret_until: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # enabled | disabled
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    failing_since: Mapped[datetime | None]  # first failure with no success since
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event for one endpoint: pending until delivered, or failed when its retries are
    spent. `webhook-id` is the event's id, so a retry or a replay is the same message."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "endpoint_id", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(BigInteger)  # the event's, for order
    status: Mapped[str] = mapped_column(String(16))  # pending | delivering | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claim_token: Mapped[str | None] = mapped_column(String(64))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookAttempt(Base):
    """Every attempt at a delivery: when, the answer's status code, how long, what went
    wrong. Never the body."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    latency_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
