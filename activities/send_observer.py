"""What one send attempt tells the operator: a counter, a log line and span attributes.

The send activity has many exits (sent, held, deferred, re-slotted, skipped, failed,
retried); recording them in one place, around the activity, keeps the send path free of
telemetry calls and makes every exit counted exactly once. Only ids and enums leave
here: never an address, a phone number or rendered text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.sending import SendContext
from runtime.metrics import NO_METRICS, OutboundMetrics
from runtime.telemetry import annotate_current_span
from schemas.activity_io import SendResult
from schemas.enums import SendOutcome


@dataclass(slots=True)
class SendObservation:
    """Filled in by the send as it learns things; read once when it ends."""

    execution_id: int
    context: SendContext | None = None

    @property
    def channel(self) -> str:
        return self.context.step.channel if self.context is not None else "unknown"

    def ids(self) -> dict[str, int | str]:
        """The log/span fields: Outbound's ids (Temporal's come from the activity logger)."""
        fields: dict[str, int | str] = {"execution_id": self.execution_id}
        if self.context is not None:
            fields |= {
                "campaign_id": self.context.campaign.id,
                "step": self.context.step.position,
                "contact_id": self.context.contact.id,
                "channel": self.context.step.channel,
            }
        return fields


class SendObserver:
    def __init__(self, metrics: OutboundMetrics | None = None) -> None:
        self.metrics = metrics or NO_METRICS

    def finished(self, seen: SendObservation, result: SendResult) -> None:
        outcome = result.outcome.value.lower()
        self.metrics.send(seen.channel, outcome)
        if result.outcome is SendOutcome.DEFERRED:
            self.metrics.deferral(seen.channel)
        self._report(seen, outcome, logging.INFO)

    def failed(self, seen: SendObservation, error: BaseException) -> None:
        """`failed`: the send gave up on this attempt for good; `retry`: Temporal retries it;
        `error`: something unexpected (database, bug), also retried."""
        if isinstance(error, ApplicationError):
            outcome = "failed" if error.non_retryable else "retry"
            error_type = error.type or "ApplicationError"
        else:
            outcome, error_type = "error", type(error).__name__
        self.metrics.send(seen.channel, outcome)
        self._report(seen, outcome, logging.WARNING, error_type)

    def mailbox_paused(self, channel: str) -> None:
        self.metrics.mailbox_paused(channel)

    @staticmethod
    def _report(seen: SendObservation, outcome: str, level: int, error_type: str | None = None) -> None:
        fields = seen.ids() | {"outcome": outcome}
        if error_type is not None:
            fields["error_type"] = error_type
        annotate_current_span({f"outbound.{key}": value for key, value in fields.items()})
        if activity.logger.isEnabledFor(level):
            activity.logger.log(level, "send %s: execution %s", outcome, seen.execution_id, extra=fields)
