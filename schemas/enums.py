"""Enumerations shared by the database, the workflows and the CLI."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    VOICEMAIL = "voicemail"


class CampaignStatus(StrEnum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)


class ExecutionStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {ExecutionStatus.SENT, ExecutionStatus.SKIPPED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
OPEN_STATUSES = frozenset({ExecutionStatus.SCHEDULED, ExecutionStatus.QUEUED, ExecutionStatus.SENDING})
# Open rows that have not passed the gate: a fetch may claim them, a lifecycle change moves them.
WAITING_STATUSES = frozenset({ExecutionStatus.SCHEDULED, ExecutionStatus.QUEUED})


class SkipReason(StrEnum):
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"
    NO_ADDRESS = "no_address"
    PREVIOUS_STEP_NOT_SENT = "previous_step_not_sent"
    UNVERIFIED = "unverified"  # the address does not meet the campaign's `verification:`


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"  # replied, bounced, unsubscribed: no further step
    UNVERIFIED = "unverified"  # the address fails the campaign's `verification:`: every step skipped


class SuppressionKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    DOMAIN = "domain"


class SendOutcome(StrEnum):
    """What one send activity attempt did with its execution row."""

    SENT = "SENT"
    HELD = "HELD"  # the gate was closed (campaign paused); the row waits as SCHEDULED
    DEFERRED = "DEFERRED"  # the sender's quota is used up; the row moved to the next window
    RESLOTTED = "RESLOTTED"  # outside the sending window at send time; moved to the next window
    SKIPPED = "SKIPPED"  # a reason about the contact (replied, suppressed, no address)
    ALREADY_DONE = "ALREADY_DONE"  # a re-delivery found the row terminal
    # In a batch only (an activity per message raises instead, and Temporal retries it):
    RETRYING = "RETRYING"  # the message failed for now; its row waits for its next attempt
    FAILED = "FAILED"  # the message failed for good; its row is dead-lettered
