"""The single gate into sending and the quota claim (DESIGN R2, R3, R6).

A row reaches SENDING only through `pass_gate`, one conditional UPDATE that also requires
the campaign open, the contact not stopped and the previous step terminal, committed in
the same transaction as the sender's quota claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from db.models import Campaign, Contact, DeadLetter, Enrollment, Sender, Step, StepExecution
from schemas.enums import TERMINAL_STATUSES, CampaignStatus, Channel, ExecutionStatus

_CLAIMABLE = [ExecutionStatus.QUEUED.value, ExecutionStatus.SCHEDULED.value]
_TERMINAL = [s.value for s in TERMINAL_STATUSES]
_OPEN = [ExecutionStatus.SCHEDULED.value, ExecutionStatus.QUEUED.value, ExecutionStatus.SENDING.value]


@dataclass(frozen=True, slots=True)
class SendContext:
    """Everything one send needs, loaded in one go."""

    execution: StepExecution
    step: Step
    previous_step_id: int | None
    contact: Contact
    sender: Sender
    campaign: Campaign


def load_context(session: Session, execution_id: int) -> SendContext | None:
    execution = session.get(StepExecution, execution_id)
    if execution is None or execution.sender_id is None:
        return None
    step = session.get_one(Step, execution.step_id)
    previous_step_id = session.scalar(
        select(Step.id).where(Step.campaign_id == step.campaign_id, Step.position == step.position - 1)
    )
    return SendContext(
        execution=execution,
        step=step,
        previous_step_id=previous_step_id,
        contact=session.get_one(Contact, execution.contact_id),
        sender=session.get_one(Sender, execution.sender_id),
        campaign=session.get_one(Campaign, execution.campaign_id),
    )


def previous_email(session: Session, execution: StepExecution) -> tuple[str | None, str | None, list[str]]:
    """The latest message sent to this contact by an earlier email step of the campaign:
    its Message-ID and thread, and the chain of Message-IDs for `References`."""
    rows = session.execute(
        select(StepExecution.message_key, StepExecution.provider_thread_id)
        .join(Step, Step.id == StepExecution.step_id)
        .where(
            StepExecution.campaign_id == execution.campaign_id,
            StepExecution.contact_id == execution.contact_id,
            StepExecution.status == ExecutionStatus.SENT.value,
            Step.channel == Channel.EMAIL.value,
            Step.id != execution.step_id,
        )
        .order_by(Step.position)
    ).all()
    keys = [key for key, _ in rows if key]
    if not rows:
        return None, None, []
    return rows[-1][0], rows[-1][1], keys


def pass_gate(session: Session, context: SendContext, message_key: str, now: datetime) -> bool:
    """Move the row to SENDING if and only if everything still allows the send."""
    previous = aliased(StepExecution)
    conditions = [
        StepExecution.id == context.execution.id,
        StepExecution.status.in_(_CLAIMABLE),
        exists().where(Campaign.id == context.campaign.id, Campaign.status == CampaignStatus.ACTIVE.value),
        exists().where(Contact.id == context.contact.id, Contact.stopped_reason.is_(None)),
        exists().where(
            Enrollment.campaign_id == context.campaign.id,
            Enrollment.contact_id == context.contact.id,
            Enrollment.status == "active",
        ),
    ]
    if context.previous_step_id is not None:
        conditions.append(
            exists().where(
                previous.step_id == context.previous_step_id,
                previous.contact_id == context.contact.id,
                previous.status.in_(_TERMINAL),
            )
        )
    result = session.execute(
        update(StepExecution)
        .where(*conditions)
        .values(
            status=ExecutionStatus.SENDING.value,
            message_key=message_key,
            attempts=StepExecution.attempts + 1,
            lease_until=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def claim_quota(session: Session, sender_id: int, day: date) -> bool:
    """Take one send of the sender's daily limit, resetting the count when the sender's
    local day changed. One statement: concurrent workers can never exceed the limit."""
    result = session.execute(
        update(Sender)
        .where(
            Sender.id == sender_id,
            Sender.status == "active",
            or_(Sender.quota_day.is_(None), Sender.quota_day != day, Sender.sends_today < Sender.daily_limit),
        )
        .values(
            sends_today=case((Sender.quota_day == day, Sender.sends_today + 1), else_=1),
            quota_day=day,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def mark_sent(session: Session, execution_id: int, now: datetime, message_id: str, thread_id: str | None) -> bool:
    result = session.execute(
        update(StepExecution)
        .where(StepExecution.id == execution_id, StepExecution.status == ExecutionStatus.SENDING.value)
        .values(
            status=ExecutionStatus.SENT.value,
            sent_at=now,
            provider_message_id=message_id,
            provider_thread_id=thread_id,
            error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def reschedule(
    session: Session, execution_id: int, when: datetime, now: datetime, *, from_sending: bool = False
) -> bool:
    """Put a claimed row back to SCHEDULED at a new time (held, deferred, re-slotted).
    `from_sending` also takes a SENDING row: only when the provider refused the message."""
    statuses = [*_CLAIMABLE, ExecutionStatus.SENDING.value] if from_sending else _CLAIMABLE
    result = session.execute(
        update(StepExecution)
        .where(StepExecution.id == execution_id, StepExecution.status.in_(statuses))
        .values(status=ExecutionStatus.SCHEDULED.value, scheduled_for=when, lease_until=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def close_row(session: Session, execution_id: int, status: ExecutionStatus, reason: str | None, now: datetime) -> None:
    """Close a row that never went out (skipped or cancelled)."""
    session.execute(
        update(StepExecution)
        .where(StepExecution.id == execution_id, StepExecution.status.in_(_CLAIMABLE))
        .values(status=status.value, skip_reason=reason, lease_until=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def dead_letter(
    session: Session, execution_id: int, error_type: str, message: str, attempts: int, now: datetime
) -> bool:
    """FAILED plus a dead-letter record, once, for an execution still open."""
    execution = session.get(StepExecution, execution_id)
    if execution is None or execution.status not in _OPEN:
        return False
    execution.status = ExecutionStatus.FAILED.value
    execution.error = f"{error_type}: {message}"
    execution.lease_until = None
    execution.updated_at = now
    session.execute(
        insert(DeadLetter).values(
            execution_id=execution_id,
            campaign_id=execution.campaign_id,
            error_type=error_type,
            error=message,
            attempts=attempts,
            status="open",
            created_at=now,
        )
    )
    return True


def hold_time(now: datetime) -> datetime:
    """A held row waits a little so an unpaused step does not spin on it."""
    return now + timedelta(seconds=30)


def cancel_sending(session: Session, execution_id: int, now: datetime) -> None:
    """A SENDING row whose message provably never went out, after a cancel."""
    session.execute(
        update(StepExecution)
        .where(StepExecution.id == execution_id, StepExecution.status == ExecutionStatus.SENDING.value)
        .values(status=ExecutionStatus.CANCELLED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
