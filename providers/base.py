"""The contract every channel provider implements, and how its failures are classified.

Classification happens once, here, so the send activity can map it to Temporal's retry
semantics without knowing any provider's error codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from schemas.enums import Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    execution_id: int
    key: str  # deterministic RFC 5322 Message-ID, also the idempotency key at the provider
    channel: Channel
    sender_address: str
    to: str
    subject: str | None = None
    body: str | None = None
    html: str | None = None  # email only: the HTML alternative (derived from `body` when absent)
    say: str | None = None
    audio_url: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    thread_id: str | None = None  # the provider's thread of the parent message (Gmail threadId)
    headers: dict[str, str] = field(default_factory=dict)  # extra headers, e.g. List-Unsubscribe
    status_callback: str | None = None  # SMS/voicemail: where the provider reports delivery
    voice_url: str | None = None  # voicemail: where the provider fetches the TwiML after AMD
    # When this execution entered SENDING (None for rows from before it was recorded): a
    # retry's look-up (R3) must not look earlier, or an earlier step's message stands in for it.
    sending_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class SentReceipt:
    provider_message_id: str
    provider_thread_id: str | None = None
    rfc_message_id: str | None = None  # the Message-ID the provider actually kept, when it differs


class FailureKind(StrEnum):
    RETRYABLE = "retryable"  # network, timeouts: retry with backoff
    # Rate limits and the provider's own 5xx: retried like RETRYABLE, and because they are
    # about the mailbox rather than the recipient, repeated ones pause the mailbox (R12).
    THROTTLED = "throttled"
    PERMANENT = "permanent"  # invalid recipient and the like: never retry
    QUOTA_EXHAUSTED = "quota_exhausted"  # the mailbox's daily limit: defer to its next window
    AUTH_REVOKED = "auth_revoked"  # the sender account can no longer send


class ProviderError(Exception):
    """A classified provider failure. The message must not contain recipient data."""

    def __init__(self, kind: FailureKind, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


class DeliveryUnknown(Exception):
    """The provider cannot prove whether a message went out; resending could duplicate it."""


class Provider(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> SentReceipt: ...

    def find_sent(self, message: OutgoingMessage) -> SentReceipt | None:
        """The receipt of an earlier send of this message, None if it provably never went
        out, or DeliveryUnknown when absence cannot be proven."""
        ...
