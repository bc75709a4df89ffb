"""One settings object for every process, read from `OUTBOUND_*` environment variables.

Settings are passed explicitly (never a module global) so tests can build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.durations import parse_seconds
from runtime.names import QueueKind
from schemas.workflow_io import Tuning

DEFAULT_HOME = Path(".outbound")


class OutboxFaults(BaseModel):
    """Deliberate failures of the outbox provider, so the retry and exactly-once paths
    can be exercised end to end (set with e.g. `OUTBOUND_OUTBOX_FAULTS__TRANSIENT_FAILURES=2`)."""

    transient_failures: int = Field(0, ge=0, description="First N attempts per message fail with a 503.")
    transient_failure_marker: str | None = Field(
        None, description="With transient_failures: only recipients containing this text fail (others go through)."
    )
    crash_after_write: bool = Field(False, description="First attempt per message writes, then fails.")
    permanent_failure_marker: str | None = Field(
        None, description="Recipients containing this text are rejected permanently."
    )
    quota_exhausted: bool = Field(False, description="Every send answers 'daily sending limit reached'.")
    send_delay_seconds: float = Field(0.0, ge=0, description="Each send takes this long (graceful shutdown tests).")


class GmailSettings(BaseModel):
    """Gmail API access. The endpoints exist so tests can point the real client at a fake."""

    api_endpoint: str | None = Field(None, description="Override of https://gmail.googleapis.com (tests only).")
    token_uri: str | None = Field(None, description="Override of Google's OAuth token endpoint (tests only).")
    lookup_grace_seconds: float = Field(
        20.0, ge=0, description="How long after a send a missing rfc822msgid: search result is not yet trusted."
    )
    sync_interval_seconds: float = Field(60.0, gt=0, description="Pause between inbound syncs of one mailbox.")


class TwilioSettings(BaseModel):
    """One Twilio account for SMS and voicemail; the auth token also verifies webhooks."""

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    api_base: str | None = Field(None, description="Override of https://api.twilio.com (tests only).")


class RetentionSettings(BaseModel):
    """How long details are kept (`OUTBOUND_RETENTION__INBOUND_BODY_DAYS=90`); counts,
    classifications, ids and the analytics buckets are kept for good."""

    inbound_body_days: int = Field(90, ge=1, description="Inbound message bodies and headers are purged after this.")
    error_payload_days: int = Field(
        30, ge=1, description="Error text of finished executions and closed dead letters is purged after this."
    )
    event_days: int = Field(
        30, ge=1, description="Events for the app, with their deliveries, are deleted after this (once delivered)."
    )


class MailboxPauseSettings(BaseModel):
    """When a mailbox (any sender account) is paused instead of retried contact by contact:
    `after_failures` rate limits or provider 5xx within `within_seconds` pause it for
    `pause_seconds` (`OUTBOUND_MAILBOX_PAUSE__PAUSE_SECONDS=600`). Sends meeting the pause
    wait for its end; the other mailboxes go on (DESIGN R12)."""

    model_config = {"extra": "forbid"}

    after_failures: int = Field(5, ge=1, description="Rate limits or 5xx that pause a mailbox...")
    within_seconds: int = Field(60, ge=1, description="...when they happen within this many seconds.")
    pause_seconds: int = Field(300, ge=1, description="How long the mailbox then sends nothing.")


class WebhookSettings(BaseModel):
    """Delivery of events to the app's endpoints (`OUTBOUND_WEBHOOKS__DISABLE_AFTER=5d`)."""

    model_config = {"extra": "forbid"}

    disable_after: int = Field(
        5 * 86_400, ge=60, description="An endpoint whose deliveries have all failed this long is disabled (5d)."
    )
    rotation_grace: int = Field(
        86_400, ge=0, description="After `webhooks rotate-secret`, the old secret also signs for this long (24h)."
    )
    allow_private: bool = Field(
        False, description="Deliver to loopback and private addresses (local receivers, tests); refused otherwise."
    )
    batch: int = Field(50, ge=1, le=500, description="Events one delivery activity posts, in order.")
    poll: float = Field(
        20.0, ge=0, le=300, description="Seconds a delivery workflow's claim waits for new events (0: check on timers)."
    )
    timeout: int = Field(15, ge=1, le=120, description="Seconds an endpoint has to answer.")

    @field_validator("disable_after", "rotation_grace", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        """`5d`, `12h`, `90m` as well as plain seconds."""
        if isinstance(value, str) and not value.strip().isdigit():
            return parse_seconds(value)
        return value


class VerificationSettings(BaseModel):
    """Email verification's DNS (`OUTBOUND_VERIFICATION__NAMESERVERS='["10.0.0.2"]'`)."""

    model_config = {"extra": "forbid"}

    nameservers: list[str] = Field(
        default_factory=list,
        description="Resolvers to ask, `host` or `host:port` ([v6]:port); empty: the system's (/etc/resolv.conf).",
    )
    timeout: float = Field(5.0, gt=0, le=60, description="Seconds one lookup may take, retries included.")
    cache_size: int = Field(100_000, ge=0, description="DNS answers a worker keeps for their TTL (0: none).")


class AiSettings(BaseModel):
    """A language model behind any OpenAI-compatible endpoint (`OUTBOUND_AI__MODEL=...`,
    `OUTBOUND_AI__BASE_URL=http://localhost:11434/v1` for Ollama); none: the rules decide."""

    model_config = {"extra": "forbid"}

    model: str | None = Field(None, description="The model's name at the endpoint; unset: no model calls.")
    base_url: str | None = Field(None, description="The endpoint (…/v1); unset: OpenAI's.")
    api_key: SecretStr | None = Field(None, description="The endpoint's key (local servers take none).")
    timeout: float = Field(20.0, gt=0, le=300, description="Seconds one call may take.")
    retries: int = Field(1, ge=0, le=5, description="Retries of a failed call before the fallback decides.")


class QueueLimits(BaseModel):
    """Overrides for one task queue, named without the prefix, e.g.
    `OUTBOUND_QUEUE_LIMITS__SMS__MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND=1` (a Twilio
    number's rate) or `OUTBOUND_QUEUE_LIMITS__EMAIL__MAX_CONCURRENT_ACTIVITIES=16`."""

    model_config = {"extra": "forbid"}

    max_concurrent_activities: int | None = Field(None, ge=1, description="Activity slots of this worker.")
    max_task_queue_activities_per_second: float | None = Field(
        None, gt=0, description="Starts per second across every worker polling the queue (server-enforced)."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTBOUND_", env_nested_delimiter="__", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{DEFAULT_HOME / 'outbound.db'}",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db.",
    )
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    web_ui_url: str = Field("http://localhost:8233", description="The Temporal Web UI, for links the CLI prints.")
    outbox_dir: Path = DEFAULT_HOME / "outbox"
    outbox_faults: OutboxFaults = Field(default_factory=OutboxFaults)
    task_queue_prefix: str = Field("", description="Prefix for every task queue name (one deployment per prefix).")
    send_window_size: int = Field(200, ge=1, le=1000, description="Sends in flight per step workflow.")
    send_heartbeat_seconds: int = Field(
        20,
        ge=2,
        description="Heartbeat timeout of send activities: how soon a dead worker's sends are taken up again.",
    )
    send_batch_size: int = Field(
        1,
        ge=1,
        le=100,
        description="Messages of one sender per send activity (1: an activity per message). More cuts the"
        " Temporal actions per message; each message keeps its own gate, outcome and retries.",
    )
    # Slots per task queue. One worker process runs every send in Python under one GIL:
    # past a couple of dozen concurrent sends per queue they only wait for each other (the
    # 10k benchmark sent 132/s at 24 and 110-115/s at 64; docs/decisions/0015). Providers'
    # own limits (warmup, one SMS a second per number) bind long before this does.
    max_concurrent_activities: int = Field(24, ge=1)
    max_task_queue_activities_per_second: float | None = Field(
        None, gt=0, description="Default rate limit of the sending and inbound queues (never the campaigns queue)."
    )
    queue_limits: dict[QueueKind, QueueLimits] = Field(
        default_factory=dict, description="Per-task-queue overrides of the two settings above."
    )
    graceful_shutdown_seconds: float = Field(
        30.0, ge=0, description="Time running activities get on SIGTERM/SIGINT before the worker exits."
    )
    metrics_address: str | None = Field(
        None, description="host:port where a worker serves Prometheus /metrics (Temporal's and Outbound's); unset: off."
    )
    log_format: Literal["text", "json"] = Field("text", description="`json` for one JSON object per log line.")
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key that encrypts mailbox tokens at rest and signs unsubscribe links "
        "(`outbound secret-key` makes one).",
    )
    secret_key_file: Path = Field(
        DEFAULT_HOME / "secret.key",
        description="On SQLite (the embedded defaults) without OUTBOUND_SECRET_KEY:"
        " where the local key is made and kept.",
    )
    jobs_file: Path | None = Field(
        None, description="The job queues (`jobs.yaml`): each queue's handler, slots, rate limit, attempts."
    )
    public_base_url: str = Field(
        "http://localhost:8080", description="Where the API service is reachable from outside (links, callbacks)."
    )
    api_host: str = "127.0.0.1"
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token for the API's operator routes (/internal/*, the full /health);"
        " unset: those routes refuse every request.",
    )

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_token_is_no_token(cls, value: object) -> object:
        """An empty variable (compose's `${OUTBOUND_API_TOKEN:-}`) means no token, never ""."""
        return None if isinstance(value, str) and not value.strip() else value

    api_port: int = Field(8080, ge=0, le=65535)
    unsubscribe_link_days: int = Field(90, ge=1, description="How long an unsubscribe link stays valid.")
    soft_bounce_threshold: int = Field(3, ge=1, description="Soft bounces after which an address is suppressed.")
    gmail: GmailSettings = Field(default_factory=GmailSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    mailbox_pause: MailboxPauseSettings = Field(default_factory=MailboxPauseSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    verification: VerificationSettings = Field(default_factory=VerificationSettings)
    ai: AiSettings = Field(default_factory=AiSettings)
    enrichment_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Secrets enrichment providers authenticate with, by the name a jobs file gives"
        " (`OUTBOUND_ENRICHMENT_SECRETS__ACME_DATA=...` for `secret: acme_data`).",
    )

    def worker_limits(self, kind: QueueKind) -> dict[str, Any]:
        """`Worker` options for one queue: its override, else the defaults. The campaigns
        queue (planning, lifecycle) is only rate-limited when asked for by name: throttling
        it would slow pause and cancel, not the providers."""
        override = self.queue_limits.get(kind, QueueLimits())
        limits: dict[str, Any] = {
            "max_concurrent_activities": override.max_concurrent_activities or self.max_concurrent_activities
        }
        rate = override.max_task_queue_activities_per_second
        if rate is None and kind != "campaigns":
            rate = self.max_task_queue_activities_per_second
        if rate is not None:
            limits["max_task_queue_activities_per_second"] = rate
        return limits

    def activity_threads(self) -> int:
        """Threads for the sending and inbound queues of one worker process: enough for the
        largest queue's slots, plus a few. They share one pool; a provider's limits bind
        long before the threads do."""
        slots = [self.max_concurrent_activities]
        slots += [
            limits.max_concurrent_activities or 0 for kind, limits in self.queue_limits.items() if kind != "campaigns"
        ]
        return max(slots) + 8

    def control_threads(self) -> int:
        """Threads of the campaigns queue (planning, fetches, pause, cancel), a pool of its
        own: with every sending queue busy, a shared pool made a cancel wait seconds for a
        thread behind sends."""
        return int(self.worker_limits("campaigns")["max_concurrent_activities"])

    def database_connections(self) -> int:
        """One connection per activity thread (see `workers/run.py`)."""
        return self.activity_threads() + self.control_threads()

    def tuning(self) -> Tuning:
        """The workflow knobs a launch carries from these settings (the rest keep defaults)."""
        return Tuning(
            send_window=self.send_window_size,
            send_batch_size=self.send_batch_size,
            send_heartbeat_seconds=self.send_heartbeat_seconds,
        )

    def masked(self) -> dict[str, Any]:
        """The effective settings with secrets hidden, for `outbound config`."""
        data = self.model_dump(mode="json")
        for name, field in type(self).model_fields.items():
            if field.annotation is not None and "SecretStr" in str(field.annotation) and data.get(name):
                data[name] = "**********"
        data["database_url"] = _mask_url_password(self.database_url)
        return data


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
