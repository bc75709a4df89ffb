"""The single gate into sending and the quota claim (DESIGN R2, R3, R6).

A row reaches SENDING only through `pass_gate`, one conditional UPDATE that also requires
the campaign open, the contact not stopped and the previous step terminal, committed in
the same transaction as the sender's quota claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Date, Select, String, Table, Update, bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from db.models import Campaign, Contact, DeadLetter, Enrollment, Sender, Step, StepExecution
from db.types import UTCDateTime
from schemas.enums import TERMINAL_STATUSES, CampaignStatus, Channel, ExecutionStatus

# Core tables for the hot-path UPDATEs: ORM-enabled statements cost more worker CPU than
# the database spends on them, and these never need the identity map.
_EXECUTIONS = cast(Table, StepExecution.__table__)
_SENDERS = cast(Table, Sender.__table__)
_CLAIMABLE = [ExecutionStatus.QUEUED.value, ExecutionStatus.SCHEDULED.value]
_TERMINAL = [s.value for s in TERMINAL_STATUSES]
_OPEN = [ExecutionStatus.SCHEDULED.value, ExecutionStatus.QUEUED.value, ExecutionStatus.SENDING.value]


@dataclass(frozen=True, slots=True)
class ExecutionView:
    id: int
    campaign_id: int
    step_id: int
    contact_id: int
    status: str
    attempts: int


@dataclass(frozen=True, slots=True)
class StepView:
    id: int
    position: int
    channel: str
    subject: str | None
    body: str | None
    say: str | None
    audio_url: str | None
    new_thread: bool


@dataclass(frozen=True, slots=True)
class ContactView:
    id: int
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    timezone: str | None
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SenderView:
    id: int
    address: str
    provider: str
    timezone: str


@dataclass(frozen=True, slots=True)
class CampaignView:
    id: int
    timezone: str
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendContext:
    """Everything one send needs, read in one round trip as plain values (no ORM identity
    map: the send path is CPU-bound in the worker and ORM hydration was a third of it)."""

    execution: ExecutionView
    step: StepView
    previous_step_id: int | None
    contact: ContactView
    sender: SenderView
    campaign: CampaignView


def _columns(model: type[Any], view: type[Any]) -> list[Any]:
    return [getattr(model, name).label(f"{view.__name__}.{name}") for name in view.__dataclass_fields__]


_VIEWS: tuple[tuple[type[Any], type[Any]], ...] = (
    (StepExecution, ExecutionView),
    (Step, StepView),
    (Contact, ContactView),
    (Sender, SenderView),
    (Campaign, CampaignView),
)


def _context_query() -> Select[Any]:
    previous_step = aliased(Step)
    previous_step_id = (
        select(previous_step.id)
        .where(previous_step.campaign_id == Step.campaign_id, previous_step.position == Step.position - 1)
        .scalar_subquery()
        .label("previous_step_id")
    )
    columns = [column for model, view in _VIEWS for column in _columns(model, view)]
    return (
        select(*columns, previous_step_id)
        .join_from(StepExecution, Step, Step.id == StepExecution.step_id)
        .join(Contact, Contact.id == StepExecution.contact_id)
        .join(Sender, Sender.id == StepExecution.sender_id)
        .join(Campaign, Campaign.id == StepExecution.campaign_id)
        .where(StepExecution.id == bindparam("execution_id"))
    )


_CONTEXT_QUERY = _context_query()


def load_context(session: Session, execution_id: int) -> SendContext | None:
    row = session.execute(_CONTEXT_QUERY, {"execution_id": execution_id}).mappings().one_or_none()
    if row is None:
        return None
    views = {
        view: view(**{name: row[f"{view.__name__}.{name}"] for name in view.__dataclass_fields__}) for _, view in _VIEWS
    }
    return SendContext(
        execution=views[ExecutionView],
        step=views[StepView],
        previous_step_id=row["previous_step_id"],
        contact=views[ContactView],
        sender=views[SenderView],
        campaign=views[CampaignView],
    )


def previous_email(session: Session, execution: ExecutionView) -> tuple[str | None, str | None, list[str]]:
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


def _gate_statement(*, with_previous_step: bool) -> Update:
    previous = aliased(StepExecution)
    conditions = [
        StepExecution.id == bindparam("p_execution_id"),
        StepExecution.status.in_(_CLAIMABLE),
        exists().where(Campaign.id == bindparam("p_campaign_id"), Campaign.status == CampaignStatus.ACTIVE.value),
        exists().where(Contact.id == bindparam("p_contact_id"), Contact.stopped_reason.is_(None)),
        exists().where(
            Enrollment.campaign_id == bindparam("p_campaign_id"),
            Enrollment.contact_id == bindparam("p_contact_id"),
            Enrollment.status == "active",
        ),
    ]
    if with_previous_step:
        conditions.append(
            exists().where(
                previous.step_id == bindparam("p_previous_step_id"),
                previous.contact_id == bindparam("p_contact_id"),
                previous.status.in_(_TERMINAL),
            )
        )
    return (
        update(_EXECUTIONS)
        .where(*conditions)
        .values(
            status=ExecutionStatus.SENDING.value,
            message_key=bindparam("p_message_key"),
            attempts=StepExecution.attempts + 1,
            lease_until=None,
            updated_at=bindparam("p_now", type_=UTCDateTime()),
        )
    )


# Built once: the hot path then skips statement construction and cache-key generation.
_GATE = {flag: _gate_statement(with_previous_step=flag) for flag in (False, True)}


def pass_gate(session: Session, context: SendContext, message_key: str, now: datetime) -> bool:
    """Move the row to SENDING if and only if everything still allows the send."""
    result = session.execute(
        _GATE[context.previous_step_id is not None],
        {
            "p_execution_id": context.execution.id,
            "p_campaign_id": context.campaign.id,
            "p_contact_id": context.contact.id,
            "p_previous_step_id": context.previous_step_id,
            "p_message_key": message_key,
            "p_now": now,
        },
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


_DAY = bindparam("p_day", type_=Date())
_CLAIM = (
    update(_SENDERS)
    .where(
        Sender.id == bindparam("p_sender_id"),
        Sender.status == "active",
        or_(Sender.quota_day.is_(None), Sender.quota_day != _DAY, Sender.sends_today < Sender.daily_limit),
    )
    .values(sends_today=case((Sender.quota_day == _DAY, Sender.sends_today + 1), else_=1), quota_day=_DAY)
)


def claim_quota(session: Session, sender_id: int, day: date) -> bool:
    """Take one send of the sender's daily limit, resetting the count when the sender's
    local day changed. One statement: concurrent workers can never exceed the limit."""
    result = session.execute(_CLAIM, {"p_sender_id": sender_id, "p_day": day})
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


_NOW = bindparam("p_now", type_=UTCDateTime())
_MARK_SENT = (
    update(_EXECUTIONS)
    .where(StepExecution.id == bindparam("p_execution_id"), StepExecution.status == ExecutionStatus.SENDING.value)
    .values(
        status=ExecutionStatus.SENT.value,
        sent_at=_NOW,
        provider_message_id=bindparam("p_message_id"),
        provider_thread_id=bindparam("p_thread_id"),
        message_key=func.coalesce(bindparam("p_rfc_message_id", type_=String()), StepExecution.message_key),
        error=None,
        updated_at=_NOW,
    )
)


def mark_sent(
    session: Session,
    execution_id: int,
    now: datetime,
    message_id: str,
    thread_id: str | None,
    rfc_message_id: str | None = None,
) -> bool:
    """Tx 2. `rfc_message_id` replaces the key when the provider kept another Message-ID,
    so follow-ups reference the message as the recipient saw it."""
    result = session.execute(
        _MARK_SENT,
        {
            "p_execution_id": execution_id,
            "p_now": now,
            "p_message_id": message_id,
            "p_thread_id": thread_id,
            "p_rfc_message_id": rfc_message_id,
        },
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def reschedule(
    session: Session, execution_id: int, when: datetime, now: datetime, *, from_sending: bool = False
) -> bool:
    """Put a claimed row back to SCHEDULED at a new time (held, deferred, re-slotted).
    `from_sending` also takes a SENDING row: only when the provider refused the message."""
    statuses = [*_CLAIMABLE, ExecutionStatus.SENDING.value] if from_sending else _CLAIMABLE
    result = session.execute(
        update(_EXECUTIONS)
        .where(StepExecution.id == execution_id, StepExecution.status.in_(statuses))
        .values(status=ExecutionStatus.SCHEDULED.value, scheduled_for=when, lease_until=None, updated_at=now)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def close_row(session: Session, execution_id: int, status: ExecutionStatus, reason: str | None, now: datetime) -> None:
    """Close a row that never went out (skipped or cancelled)."""
    session.execute(
        update(_EXECUTIONS)
        .where(StepExecution.id == execution_id, StepExecution.status.in_(_CLAIMABLE))
        .values(status=status.value, skip_reason=reason, lease_until=None, updated_at=now)
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
        update(_EXECUTIONS)
        .where(StepExecution.id == execution_id, StepExecution.status == ExecutionStatus.SENDING.value)
        .values(status=ExecutionStatus.CANCELLED.value, updated_at=now)
    )
