"""Dead letters: listing, inspection, discarding, and the database side of a retry.

A retry moves the FAILED execution back into the guarded send path (DESIGN R14) as
`QUEUED` with a lease, the same state a step workflow's own in-flight sends have: the
step workflow's `fetch_due` leaves a leased row alone, so the retry and a still-running
step can never both send it. The execution's `attempts` keep counting (they are the
number of times the row passed the gate, over its whole life). The letter becomes
`retrying`, then `resolved` once the execution is closed (SENT, or SKIPPED because the
contact replied since, or CANCELLED), or `open` again with the new error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.engine import changed_rows
from db.models import Campaign, DeadLetter, Step, StepExecution
from schemas.dead_letter_io import BeginRetryResult, ClaimRetryResult, DeadLetterRetryResult, DeadLetterStatus
from schemas.enums import OPEN_STATUSES, CampaignStatus, Channel, ExecutionStatus

OPEN_LETTERS = [DeadLetterStatus.OPEN.value, DeadLetterStatus.RETRYING.value]
# A send of this execution is in flight elsewhere: look again after this long.
SENDING_RECHECK = timedelta(seconds=60)


class DeadLetterError(Exception):
    """The request cannot be done (unknown id, already retried, cancelled campaign ...).
    The message is for the operator and names only ids and states."""


@dataclass(frozen=True, slots=True)
class DeadLetterSummary:
    id: int
    campaign_id: int
    step_position: int
    channel: str
    contact_id: int
    execution_id: int
    error_type: str
    attempts: int
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetterDetail:
    summary: DeadLetterSummary
    error: str
    resolved_at: datetime | None
    execution_status: str
    execution_attempts: int
    execution_error: str | None
    skip_reason: str | None
    sent_at: datetime | None
    campaign_name: str
    campaign_status: str


_SUMMARY = (
    select(
        DeadLetter.id,
        DeadLetter.campaign_id,
        Step.position,
        Step.channel,
        StepExecution.contact_id,
        StepExecution.id,
        DeadLetter.error_type,
        DeadLetter.attempts,
        DeadLetter.status,
        DeadLetter.created_at,
    )
    .join(StepExecution, StepExecution.id == DeadLetter.execution_id)
    .join(Step, Step.id == StepExecution.step_id)
)


def list_dead_letters(
    session: Session, *, campaign_id: int | None = None, include_closed: bool = False, limit: int = 100
) -> list[DeadLetterSummary]:
    """Newest first; by default only letters still waiting (open or being retried)."""
    query = _SUMMARY
    if campaign_id is not None:
        query = query.where(DeadLetter.campaign_id == campaign_id)
    if not include_closed:
        query = query.where(DeadLetter.status.in_(OPEN_LETTERS))
    rows = session.execute(query.order_by(DeadLetter.id.desc()).limit(limit)).all()
    return [_summary(tuple(row)) for row in rows]


def get_dead_letter(session: Session, dead_letter_id: int) -> DeadLetterDetail | None:
    row = session.execute(
        _SUMMARY.add_columns(
            DeadLetter.error,
            DeadLetter.resolved_at,
            StepExecution.status,
            StepExecution.attempts,
            StepExecution.error,
            StepExecution.skip_reason,
            StepExecution.sent_at,
            Campaign.name,
            Campaign.status,
        )
        .join(Campaign, Campaign.id == DeadLetter.campaign_id)
        .where(DeadLetter.id == dead_letter_id)
    ).one_or_none()
    if row is None:
        return None
    values = tuple(row)
    return DeadLetterDetail(
        summary=_summary(values[:10]),
        error=values[10],
        resolved_at=values[11],
        execution_status=values[12],
        execution_attempts=values[13],
        execution_error=values[14],
        skip_reason=values[15],
        sent_at=values[16],
        campaign_name=values[17],
        campaign_status=values[18],
    )


def _summary(row: tuple[Any, ...]) -> DeadLetterSummary:
    return DeadLetterSummary(
        id=row[0],
        campaign_id=row[1],
        step_position=row[2],
        channel=row[3],
        contact_id=row[4],
        execution_id=row[5],
        error_type=row[6],
        attempts=row[7],
        status=row[8],
        created_at=row[9],
    )


def retry_refusal(detail: DeadLetterDetail) -> str | None:
    """Why this letter cannot be retried now, or None when it can."""
    letter = detail.summary
    status = DeadLetterStatus(letter.status)
    if status is DeadLetterStatus.DISCARDED:
        return f"dead letter {letter.id} was discarded; a discarded letter cannot be retried"
    if status is DeadLetterStatus.RESOLVED:
        return f"dead letter {letter.id} was already retried and is resolved (execution {detail.execution_status})"
    if status is DeadLetterStatus.RETRYING:
        return f"dead letter {letter.id} is being retried right now"
    if detail.execution_status != ExecutionStatus.FAILED.value:
        return f"execution {letter.execution_id} is {detail.execution_status}, not FAILED: there is nothing to retry"
    if detail.campaign_status == CampaignStatus.CANCELLED.value:
        return f"campaign {letter.campaign_id} was cancelled: its dead letters cannot be retried (discard them)"
    if detail.campaign_status == CampaignStatus.PAUSED.value:
        return f"campaign {letter.campaign_id} is paused: resume it, then retry"
    return None


def require_dead_letter(session: Session, dead_letter_id: int) -> DeadLetterDetail:
    detail = get_dead_letter(session, dead_letter_id)
    if detail is None:
        raise DeadLetterError(f"dead letter {dead_letter_id} does not exist")
    return detail


def discard(session: Session, dead_letter_id: int, now: datetime) -> None:
    """Close an open letter for good; its execution stays FAILED."""
    detail = require_dead_letter(session, dead_letter_id)
    changed = changed_rows(
        session.execute(
            update(DeadLetter)
            .where(DeadLetter.id == dead_letter_id, DeadLetter.status == DeadLetterStatus.OPEN.value)
            .values(status=DeadLetterStatus.DISCARDED.value, resolved_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if changed != 1:
        raise DeadLetterError(f"dead letter {dead_letter_id} is {detail.summary.status}; only an open one is discarded")


def begin_retry(session: Session, dead_letter_id: int, now: datetime, lease_seconds: int) -> BeginRetryResult:
    """FAILED -> QUEUED (leased to the retry) and open -> retrying, together or not at all.
    A repeated call for a letter already retrying an open row answers the same."""
    detail = require_dead_letter(session, dead_letter_id)
    letter = detail.summary
    result = BeginRetryResult(
        execution_id=letter.execution_id, campaign_id=letter.campaign_id, channel=Channel(letter.channel)
    )
    if letter.status == DeadLetterStatus.RETRYING.value and ExecutionStatus(detail.execution_status) in OPEN_STATUSES:
        return result
    refusal = retry_refusal(detail)
    if refusal:
        raise DeadLetterError(refusal)
    letters = changed_rows(
        session.execute(
            update(DeadLetter)
            .where(DeadLetter.id == dead_letter_id, DeadLetter.status == DeadLetterStatus.OPEN.value)
            .values(status=DeadLetterStatus.RETRYING.value)
            .execution_options(synchronize_session=False)
        )
    )
    rows = changed_rows(
        session.execute(
            update(StepExecution)
            .where(StepExecution.id == letter.execution_id, StepExecution.status == ExecutionStatus.FAILED.value)
            .values(
                status=ExecutionStatus.QUEUED.value,
                lease_until=now + timedelta(seconds=lease_seconds),
                error=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if letters != 1 or rows != 1:
        raise DeadLetterError(f"dead letter {dead_letter_id} changed while it was being retried; nothing was done")
    return result


def claim_for_retry(session: Session, execution_id: int, now: datetime, lease_seconds: int) -> ClaimRetryResult:
    """After a send was held, deferred or re-slotted, take the row back once it is due (the
    same claim `fetch_due` makes, so whoever claims first sends it and the other waits)."""
    row = session.execute(
        select(StepExecution.status, StepExecution.scheduled_for, StepExecution.lease_until).where(
            StepExecution.id == execution_id
        )
    ).one()
    status, scheduled_for, lease_until = ExecutionStatus(row[0]), row[1], row[2]
    if status.terminal:
        return ClaimRetryResult(claimed=False, status=status)
    if status is ExecutionStatus.SENDING:
        return ClaimRetryResult(claimed=False, status=status, wait_until=now + SENDING_RECHECK)
    due = (status is ExecutionStatus.SCHEDULED and (scheduled_for is None or scheduled_for <= now)) or (
        status is ExecutionStatus.QUEUED and (lease_until is None or lease_until < now)
    )
    if not due:
        return ClaimRetryResult(claimed=False, status=status, wait_until=scheduled_for or lease_until)
    changed = changed_rows(
        session.execute(
            update(StepExecution)
            .where(StepExecution.id == execution_id, StepExecution.status == status.value)
            .values(
                status=ExecutionStatus.QUEUED.value, lease_until=now + timedelta(seconds=lease_seconds), updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
    )
    return ClaimRetryResult(claimed=changed == 1, status=ExecutionStatus.QUEUED, wait_until=None if changed else now)


def finish_retry(
    session: Session,
    dead_letter_id: int,
    now: datetime,
    *,
    error_type: str | None = None,
    message: str | None = None,
    gave_up: bool = False,
) -> DeadLetterRetryResult:
    """Settle the letter from where its execution ended. `error_type`: the retried send
    failed (the row is FAILED again and the letter open with the new error); with
    `gave_up`, the row kept waiting (held, deferred) past the retry's rounds."""
    letter = session.get_one(DeadLetter, dead_letter_id)
    execution = session.get_one(StepExecution, letter.execution_id)
    status = ExecutionStatus(execution.status)
    failable = [ExecutionStatus.SCHEDULED] if gave_up else [ExecutionStatus.SCHEDULED, ExecutionStatus.QUEUED]
    if error_type is not None and (status in failable or (status is ExecutionStatus.SENDING and not gave_up)):
        execution.status = ExecutionStatus.FAILED.value
        execution.error = f"{error_type}: {message or ''}"
        execution.lease_until = None
        execution.updated_at = now
        status = ExecutionStatus.FAILED
    if status.terminal and status is not ExecutionStatus.FAILED:
        letter.status = DeadLetterStatus.RESOLVED.value
        letter.resolved_at = now
    else:
        letter.status = DeadLetterStatus.OPEN.value
        if error_type is not None:
            letter.error_type = error_type
            letter.error = message or ""
        letter.attempts = execution.attempts
    return DeadLetterRetryResult(
        dead_letter_id=letter.id,
        execution_id=execution.id,
        execution_status=status,
        letter_status=DeadLetterStatus(letter.status),
        detail=execution.skip_reason if status is ExecutionStatus.SKIPPED else error_type,
    )
