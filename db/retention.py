"""Retention: details are purged after a configured age, aggregates are kept.

One set-based UPDATE per kind of row (no row is read into Python):
- inbound messages received before the cutoff lose their bodies and headers; their
  classification, ids and links to contact and execution stay (and `purged_at` is set);
- finished executions (SENT/SKIPPED/FAILED/CANCELLED) last changed before the cutoff lose
  their `error` text;
- resolved and discarded dead letters closed before the cutoff lose their error text;
  open ones keep it, an operator still needs it.
- events for the app (and their deliveries and attempts) that happened before the event
  cutoff are deleted once none of their deliveries is still waiting to go out.
`campaign_step_stats` and every count are left alone. A second run changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, delete, func, select, update
from sqlalchemy.orm import Session

from db.engine import changed_rows
from db.models import DeadLetter, Event, InboundMessage, StepExecution, WebhookAttempt, WebhookDelivery
from runtime.settings import RetentionSettings
from schemas.dead_letter_io import DeadLetterStatus
from schemas.enums import TERMINAL_STATUSES
from schemas.retention_io import RetentionCounts

_FINISHED = [status.value for status in TERMINAL_STATUSES]
_CLOSED_LETTERS = [DeadLetterStatus.RESOLVED.value, DeadLetterStatus.DISCARDED.value]


def cutoffs(
    now: datetime, settings: RetentionSettings, *, inbound_body_days: int | None = None, error_days: int | None = None
) -> tuple[datetime, datetime]:
    """(inbound bodies before, error payloads before)."""
    return (
        now - timedelta(days=inbound_body_days or settings.inbound_body_days),
        now - timedelta(days=error_days or settings.error_payload_days),
    )


def event_cutoff(now: datetime, settings: RetentionSettings) -> datetime:
    return now - timedelta(days=settings.event_days)


def _inbound(before: datetime) -> list[ColumnElement[bool]]:
    return [InboundMessage.received_at < before, InboundMessage.purged_at.is_(None)]


def _executions(before: datetime) -> list[ColumnElement[bool]]:
    return [
        StepExecution.status.in_(_FINISHED),
        StepExecution.error.is_not(None),
        StepExecution.updated_at < before,
    ]


def _letters(before: datetime) -> list[ColumnElement[bool]]:
    return [DeadLetter.status.in_(_CLOSED_LETTERS), DeadLetter.resolved_at < before, DeadLetter.error != ""]


def _expired_events(before: datetime) -> Select[Any]:
    """Events past their age whose deliveries have all ended (delivered or failed)."""
    waiting = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.event_id == Event.id, WebhookDelivery.status.in_(["pending", "delivering"]))
        .exists()
    )
    return select(Event.id).where(Event.occurred_at < before, ~waiting)


def _purge_events(session: Session, before: datetime, *, dry_run: bool) -> int:
    expired = _expired_events(before)
    if dry_run:
        return session.scalar(select(func.count()).select_from(expired.subquery())) or 0
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(expired))
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(expired)))
    return changed_rows(session.execute(delete(Event).where(Event.id.in_(expired))))


def purge(
    session: Session,
    now: datetime,
    inbound_before: datetime,
    errors_before: datetime,
    *,
    dry_run: bool = False,
    events_before: datetime | None = None,
) -> RetentionCounts:
    """Purge (or with `dry_run` only count) what is older than the cutoffs."""
    plans: list[tuple[type[Any], list[ColumnElement[bool]], dict[str, Any]]] = [
        (
            InboundMessage,
            _inbound(inbound_before),
            {"text_body": None, "html_body": None, "headers": {}, "purged_at": now},
        ),
        (StepExecution, _executions(errors_before), {"error": None}),
        (DeadLetter, _letters(errors_before), {"error": ""}),
    ]
    counts = []
    for model, where, values in plans:
        if dry_run:
            counts.append(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
        else:
            statement: Update = update(model).where(*where).values(**values)
            result = session.execute(statement.execution_options(synchronize_session=False))
            counts.append(changed_rows(result))
    events = _purge_events(session, events_before, dry_run=dry_run) if events_before is not None else 0
    return RetentionCounts(
        events=events,
        inbound_messages=counts[0],
        executions=counts[1],
        dead_letters=counts[2],
        inbound_before=inbound_before,
        errors_before=errors_before,
        dry_run=dry_run,
    )
