"""The single gate into sending and the quota claim (DESIGN R2, R3, R6).

A row reaches SENDING only through `enter_sending`: one conditional UPDATE of the sender
claims a send of its daily quota, then the gate, one conditional UPDATE of the row, requires
the campaign open, the contact not stopped and the previous step terminal (a refused gate
gives the claim back). The hot-path statements commit by themselves
(`db.engine.single_statements`): the quota row is shared by every send of a mailbox, and
holding its lock across the rest of a transaction queued all of them behind each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Date,
    Integer,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from db.engine import Statements
from db.events import EVENTS as _EVENTS
from db.events import event_values, record_event, record_message_event
from db.models import Campaign, Contact, DeadLetter, Enrollment, GeneratedText, Sender, Step, StepExecution
from db.types import UTCDateTime
from domain.calendar import local_day, zone
from domain.templates import render_template
from domain.warmup import ramp_of
from schemas.enums import TERMINAL_STATUSES, WAITING_STATUSES, CampaignStatus, Channel, ExecutionStatus
from schemas.events import EventType, MessageData

# Core tables for the hot-path UPDATEs: ORM-enabled statements cost more worker CPU than
# the database spends on them, and these never need the identity map.
_EXECUTIONS = cast(Table, StepExecution.__table__)
_SENDERS = cast(Table, Sender.__table__)
_CLAIMABLE = [s.value for s in WAITING_STATUSES]
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
    lease_until: datetime | None  # QUEUED: the claim's lease; SENDING: the running attempt's hold
    sending_since: datetime | None
    scheduled_for: datetime  # SENDING and equal to `lease_until`: waiting for a batch's next attempt

    @property
    def waiting_to_retry(self) -> bool:
        """Held by no attempt: `retry_later` holds the row until it is due again."""
        return self.lease_until is not None and self.lease_until == self.scheduled_for


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
    paused_until: datetime | None
    daily_limit: int
    warmup_start: int | None
    warmup_increment: int | None
    warmup_ceiling: int | None
    warmup_began_on: date | None

    def today(self, now: datetime) -> date:
        """The sender's own calendar day at `now`: its quota day (R6)."""
        return local_day(now, zone(self.timezone))

    def limit_on(self, day: date) -> int:
        """The sender's limit for its own calendar `day`: a warming-up mailbox's comes from
        its ramp, so it holds from the sender's midnight whenever the daily reset runs."""
        ramp = ramp_of(self.warmup_start, self.warmup_increment, self.warmup_ceiling, self.warmup_began_on)
        return ramp.limit_on(day) if ramp else self.daily_limit


@dataclass(frozen=True, slots=True)
class CampaignView:
    id: int
    workspace_id: int
    status: str
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


def load_context(db: Statements, execution_id: int) -> SendContext | None:
    row = db.first(_CONTEXT_QUERY, {"execution_id": execution_id})
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


_PREVIOUS_EMAILS = (
    select(StepExecution.message_key, StepExecution.provider_thread_id)
    .join(Step, Step.id == StepExecution.step_id)
    .where(
        StepExecution.campaign_id == bindparam("p_campaign_id"),
        StepExecution.contact_id == bindparam("p_contact_id"),
        StepExecution.status == ExecutionStatus.SENT.value,
        Step.channel == Channel.EMAIL.value,
        Step.id != bindparam("p_step_id"),
    )
    .order_by(Step.position)
)


_THREAD_SUBJECT = (
    select(Step.subject)
    .where(
        Step.campaign_id == bindparam("p_campaign_id"),
        Step.position < bindparam("p_position"),
        Step.channel == Channel.EMAIL.value,
        Step.subject.is_not(None),
    )
    .order_by(Step.position.desc())
    .limit(1)
)


def thread_subject(db: Statements, campaign_id: int, position: int) -> str | None:
    """The subject template a follow-up without one replies under: the nearest earlier
    email step's (the campaign file requires one on the first email and on new threads)."""
    row = db.first(_THREAD_SUBJECT, {"p_campaign_id": campaign_id, "p_position": position})
    return row["subject"] if row is not None else None


_WRITTEN_TEXTS = select(GeneratedText.name, GeneratedText.text).where(
    GeneratedText.campaign_id == bindparam("p_campaign_id"),
    GeneratedText.contact_id == bindparam("p_contact_id"),
    GeneratedText.text.is_not(None),
)


def ai_texts(
    db: Statements, campaign_id: int, contact_id: int, defaults: dict[str, str], context: dict[str, Any]
) -> dict[str, str]:
    """`{{ ai.<name> }}` for one contact: what the model wrote, else the rendered default
    (a contact the model wrote nothing for never gets an empty sentence)."""
    rows = db.rows(_WRITTEN_TEXTS, {"p_campaign_id": campaign_id, "p_contact_id": contact_id})
    written: dict[str, str] = {row._mapping["name"]: row._mapping["text"] for row in rows}
    return {
        name: written.get(name) or render_template(default, context, field=f"ai.{name}.default")
        for name, default in defaults.items()
    }


def previous_email(db: Statements, execution: ExecutionView) -> tuple[str | None, str | None, list[str]]:
    """The latest message sent to this contact by an earlier email step of the campaign:
    its Message-ID and thread, and the chain of Message-IDs for `References`."""
    rows = db.rows(
        _PREVIOUS_EMAILS,
        {"p_campaign_id": execution.campaign_id, "p_contact_id": execution.contact_id, "p_step_id": execution.step_id},
    )
    keys = [row[0] for row in rows if row[0]]
    if not rows:
        return None, None, []
    last = rows[-1]._mapping
    return last["message_key"], last["provider_thread_id"], keys


def _gate_statement(*, with_previous_step: bool, completed_campaign_open: bool = False) -> Update:
    """`completed_campaign_open`: a dead-letter retry may still send for a COMPLETED campaign
    (its step workflows are done); a paused or cancelled campaign stays closed."""
    previous = aliased(StepExecution)
    campaign_open = (
        Campaign.status.in_([CampaignStatus.ACTIVE.value, CampaignStatus.COMPLETED.value])
        if completed_campaign_open
        else Campaign.status == CampaignStatus.ACTIVE.value
    )
    conditions = [
        StepExecution.id == bindparam("p_execution_id"),
        StepExecution.status.in_(_CLAIMABLE),
        exists().where(Campaign.id == bindparam("p_campaign_id"), campaign_open),
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
            # While SENDING, the lease is the running attempt's hold on the row (see claim_retry).
            lease_until=bindparam("p_attempt_until", type_=UTCDateTime()),
            claim_token=None,
            sending_since=bindparam("p_now", type_=UTCDateTime()),
            updated_at=bindparam("p_now", type_=UTCDateTime()),
        )
    )


# Built once: the hot path then skips statement construction and cache-key generation.
_GATE = {
    (flag, completed): _gate_statement(with_previous_step=flag, completed_campaign_open=completed)
    for flag in (False, True)
    for completed in (False, True)
}


_DAY = bindparam("p_day", type_=Date())
_CLAIM = (
    update(_SENDERS)
    .where(
        Sender.id == bindparam("p_sender_id"),
        Sender.status == "active",
        or_(Sender.quota_day.is_(None), Sender.quota_day != _DAY, Sender.sends_today < bindparam("p_limit")),
    )
    .values(sends_today=case((Sender.quota_day == _DAY, Sender.sends_today + 1), else_=1), quota_day=_DAY)
)


_REFUND = (
    update(_SENDERS)
    .where(Sender.id == bindparam("p_sender_id"), Sender.quota_day == _DAY, Sender.sends_today > 0)
    .values(sends_today=Sender.sends_today - 1)
)


class Entry(Enum):
    """How an attempt to move a row into SENDING ended."""

    SENDING = "sending"
    NO_QUOTA = "no quota"  # the sender's day is used up; the row is untouched
    GATE_CLOSED = "gate closed"  # quota was claimed and refunded; the row is untouched


def _claim_then_gate(gate: Update) -> Select[Any]:
    """PostgreSQL: the claim and the gate in one statement (data-modifying CTEs), so one
    commit covers both; the gate runs only if the claim took a send."""
    claim = _CLAIM.returning(Sender.id).cte("claim")
    entered = gate.where(exists(select(claim.c.id))).returning(StepExecution.id).cte("entered")
    return select(
        select(func.count()).select_from(claim).scalar_subquery().label("claimed"),
        select(func.count()).select_from(entered).scalar_subquery().label("entered"),
    )


_CLAIM_THEN_GATE = {key: _claim_then_gate(gate) for key, gate in _GATE.items()}


def enter_sending(
    db: Statements,
    context: SendContext,
    message_key: str,
    day: date,
    now: datetime,
    *,
    completed_campaign_open: bool = False,
    attempt_until: datetime | None = None,
) -> Entry:
    """Claim one send of the sender's quota for `day`, then pass the gate, in that order:
    a crash between the two can only leave a claim unused, never a send unclaimed. A claim
    the gate then refuses is given back."""
    params = {
        "p_execution_id": context.execution.id,
        "p_campaign_id": context.campaign.id,
        "p_contact_id": context.contact.id,
        "p_previous_step_id": context.previous_step_id,
        "p_message_key": message_key,
        "p_now": now,
        "p_attempt_until": attempt_until,
        "p_sender_id": context.sender.id,
        "p_day": day,
        "p_limit": context.sender.limit_on(day),
    }
    key = (context.previous_step_id is not None, completed_campaign_open)
    if db.dialect == "postgresql":
        row = db.first(_CLAIM_THEN_GATE[key], params)
        claimed, entered = (row["claimed"], row["entered"]) if row is not None else (0, 0)
    else:
        claimed = db.count(_CLAIM, params)
        entered = db.count(_GATE[key], params) if claimed else 0
    if not claimed:
        return Entry.NO_QUOTA
    if entered:
        return Entry.SENDING
    refund_quota(db, context.sender.id, day)
    return Entry.GATE_CLOSED


def refund_quota(db: Statements, sender_id: int, day: date) -> None:
    """Give back a claim whose send did not happen (the gate refused). A claim lost to a
    crash before the refund only leaves the mailbox one send short that day."""
    db.count(_REFUND, {"p_sender_id": sender_id, "p_day": day})


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
        lease_until=None,
        updated_at=_NOW,
    )
)


# SENT and its `message.sent` event in one statement (PostgreSQL runs the send path in
# autocommit): the event is inserted from the row the UPDATE returns, so it exists exactly
# when the row moved.
_SENT = _MARK_SENT.returning(StepExecution.id).cte("sent")
_MARK_SENT_WITH_EVENT = (
    insert(_EVENTS)
    .add_cte(_SENT)
    .from_select(
        ["workspace_id", "type", "data", "occurred_at"],
        select(
            bindparam("p_workspace_id", type_=Integer()),
            literal(EventType.MESSAGE_SENT.value, String()),
            bindparam("p_event", type_=JSON()),
            bindparam("p_now", type_=UTCDateTime()),
        ).select_from(_SENT),
    )
)


def mark_sent(
    db: Statements,
    execution_id: int,
    now: datetime,
    message_id: str,
    thread_id: str | None,
    rfc_message_id: str | None = None,
    *,
    event: tuple[int, MessageData] | None = None,
) -> bool:
    """Tx 2, with the `message.sent` event (workspace, body) when given. `rfc_message_id`
    replaces the key when the provider kept another Message-ID, so follow-ups reference the
    message as the recipient saw it."""
    params = {
        "p_execution_id": execution_id,
        "p_now": now,
        "p_message_id": message_id,
        "p_thread_id": thread_id,
        "p_rfc_message_id": rfc_message_id,
    }
    if event is None:
        return db.count(_MARK_SENT, params) == 1
    workspace_id, data = event
    if db.dialect == "postgresql":
        body = event_values(EventType.MESSAGE_SENT, data, now, workspace_id)["data"]
        return db.count(_MARK_SENT_WITH_EVENT, {**params, "p_workspace_id": workspace_id, "p_event": body}) == 1
    with db.together():
        changed = db.count(_MARK_SENT, params) == 1
        if changed:
            record_event(db, EventType.MESSAGE_SENT, data, now, workspace_id)
    return changed


def reschedule(db: Statements, execution_id: int, when: datetime, now: datetime, *, from_sending: bool = False) -> bool:
    """Put a claimed row back to SCHEDULED at a new time (held, deferred, re-slotted).
    `from_sending` also takes a SENDING row: only when the provider refused the message."""
    statuses = [*_CLAIMABLE, ExecutionStatus.SENDING.value] if from_sending else _CLAIMABLE
    changed = db.count(
        update(_EXECUTIONS)
        .where(StepExecution.id == execution_id, StepExecution.status.in_(statuses))
        .values(status=ExecutionStatus.SCHEDULED.value, scheduled_for=when, lease_until=None, updated_at=now)
    )
    return changed == 1


def close_row(db: Statements, execution_id: int, status: ExecutionStatus, reason: str | None, now: datetime) -> None:
    """Close a row that never went out (skipped or cancelled)."""
    db.count(
        update(_EXECUTIONS)
        .where(StepExecution.id == execution_id, StepExecution.status.in_(_CLAIMABLE))
        .values(status=status.value, skip_reason=reason, lease_until=None, updated_at=now)
    )


def dead_letter(
    session: Session,
    execution_id: int,
    error_type: str,
    message: str,
    attempts: int,
    now: datetime,
    *,
    retry_state: str | None = None,
) -> int | None:
    """FAILED plus a dead-letter record, once, for an execution still open. The attempt
    count is the row's own (every attempt that held it in SENDING counts itself) unless
    the caller knows of more; at least one. Returns it, or None when nothing was written."""
    execution = session.get(StepExecution, execution_id)
    if execution is None or execution.status not in _OPEN:
        return None
    attempts = max(attempts, execution.attempts, 1)
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
            retry_state=retry_state,
            status="open",
            created_at=now,
        )
    )
    details = {"error_type": error_type, "error": message[:1000], "attempts": attempts}
    record_message_event(session, EventType.MESSAGE_FAILED, execution_id, now, **details)
    return attempts


_CLAIM_RETRY = (
    update(_EXECUTIONS)
    .where(
        StepExecution.id == bindparam("p_execution_id"),
        StepExecution.status == ExecutionStatus.SENDING.value,
        or_(StepExecution.lease_until.is_(None), StepExecution.lease_until <= bindparam("p_now", type_=UTCDateTime())),
    )
    .values(attempts=StepExecution.attempts + 1, lease_until=bindparam("p_attempt_until", type_=UTCDateTime()))
    .returning(StepExecution.attempts)
)
_HOLDER = select(StepExecution.status, StepExecution.lease_until).where(StepExecution.id == bindparam("p_execution_id"))


@dataclass(frozen=True, slots=True)
class Retry:
    """How a retry of a row already SENDING may go on."""

    attempt: int | None = None  # this attempt's number: the row is held for it
    busy_until: datetime | None = None  # another attempt holds the row until then
    closed: str | None = None  # the row is no longer SENDING (its status)


def claim_retry(db: Statements, execution_id: int, now: datetime, attempt_until: datetime) -> Retry:
    """A retry of a row already SENDING takes the row for itself until `attempt_until` and
    counts itself (the first attempt was counted at the gate), so the row knows its real
    number of attempts across runs and dead letters. It cannot take a row another attempt
    still holds: an attempt the previous run of the step left running when it continued
    as new, or one whose worker is slow. Sending beside it could send twice (R3)."""
    params = {"p_execution_id": execution_id, "p_now": now, "p_attempt_until": attempt_until}
    row = db.first(_CLAIM_RETRY, params)
    if row is not None:
        return Retry(attempt=int(row["attempts"]))
    holder = db.first(_HOLDER, params)
    if holder is None or holder["status"] != ExecutionStatus.SENDING.value:
        return Retry(closed=holder["status"] if holder else "gone")
    return Retry(busy_until=holder["lease_until"])


_RELEASE = (
    update(_EXECUTIONS)
    .where(StepExecution.id == bindparam("p_execution_id"), StepExecution.status == ExecutionStatus.SENDING.value)
    .values(lease_until=None)
)


def release_attempt(db: Statements, execution_id: int) -> None:
    """The attempt ended without recording SENT (a failure, a crash caught): the next one
    may take the row at once."""
    db.count(_RELEASE, {"p_execution_id": execution_id})


_WHEN = bindparam("p_when", type_=UTCDateTime())
_RETRY_SENDING = (
    update(_EXECUTIONS)
    .where(StepExecution.id == bindparam("p_execution_id"), StepExecution.status == ExecutionStatus.SENDING.value)
    .values(lease_until=_WHEN, scheduled_for=_WHEN, updated_at=_NOW)
    .returning(StepExecution.attempts)
)
_RETRY_WAITING = (
    update(_EXECUTIONS)
    .where(StepExecution.id == bindparam("p_execution_id"), StepExecution.status.in_(_CLAIMABLE))
    .values(
        status=ExecutionStatus.SCHEDULED.value,
        scheduled_for=_WHEN,
        lease_until=None,
        attempts=StepExecution.attempts + 1,
        updated_at=_NOW,
    )
    .returning(StepExecution.attempts)
)


def retry_later(db: Statements, execution_id: int, when: datetime, now: datetime) -> int | None:
    """A message of a batch that failed for now waits on its row for its next attempt, so
    the rest of the batch goes on. A row already SENDING stays SENDING (the message may have
    gone out: its next attempt asks the provider first), held until `when`, which is also
    when `fetch_due` hands it out again; a row that failed before the gate goes back to
    SCHEDULED at `when`, its attempt counted. Returns the row's attempts, None if it closed."""
    params = {"p_execution_id": execution_id, "p_when": when, "p_now": now}
    for statement in (_RETRY_SENDING, _RETRY_WAITING):
        row = db.first(statement, params)
        if row is not None:
            return int(row["attempts"])
    return None


_ROW_ATTEMPTS = select(StepExecution.status, StepExecution.attempts).where(
    StepExecution.id == bindparam("p_execution_id")
)


def waiting_to_retry(db: Statements, step_id: int, limit: int) -> list[int]:
    """A step's SENDING rows that wait on their row for a batch's next attempt: `retry_later`
    holds such a row until the very time it is due again, which no running attempt does (an
    attempt holds its row from now, past its slot)."""
    statement = (
        select(StepExecution.id)
        .where(
            StepExecution.step_id == step_id,
            StepExecution.status == ExecutionStatus.SENDING.value,
            StepExecution.lease_until == StepExecution.scheduled_for,
        )
        .order_by(StepExecution.id)
        .limit(limit)
    )
    return [int(row[0]) for row in db.rows(statement)]


def attempts_after_failure(db: Statements, execution_id: int) -> int | None:
    """The attempts a message has had, the one that just failed included: a SENDING row
    counted it when it was taken; one that failed before the gate is counted by
    `retry_later`. None when the row has closed meanwhile (a cancel, a reply)."""
    row = db.first(_ROW_ATTEMPTS, {"p_execution_id": execution_id})
    if row is None or row["status"] not in _OPEN:
        return None
    return int(row["attempts"]) + (0 if row["status"] == ExecutionStatus.SENDING.value else 1)


def hold_until(db: Statements, execution_id: int, until: datetime) -> None:
    """A running attempt still sends this row: keep other attempts off it until `until`."""
    db.count(
        update(_EXECUTIONS)
        .where(
            StepExecution.id == execution_id,
            StepExecution.status == ExecutionStatus.SENDING.value,
            StepExecution.lease_until.is_not(None),
        )
        .values(lease_until=until)
    )


def hold_time(now: datetime) -> datetime:
    """A held row waits a little so an unpaused step does not spin on it."""
    return now + timedelta(seconds=30)


def cancel_sending(db: Statements, execution_id: int, now: datetime) -> None:
    """A SENDING row whose message provably never went out, after a cancel."""
    db.count(
        update(_EXECUTIONS)
        .where(StepExecution.id == execution_id, StepExecution.status == ExecutionStatus.SENDING.value)
        .values(status=ExecutionStatus.CANCELLED.value, lease_until=None, updated_at=now)
    )


def execution_channel(session: Session, execution_id: int) -> str | None:
    """The channel of an execution's step (a metric label)."""
    return session.scalar(
        select(Step.channel)
        .join(StepExecution, StepExecution.step_id == Step.id)
        .where(StepExecution.id == execution_id)
    )


def gate_refusal(session: Session, campaign_id: int, contact_id: int) -> tuple[str | None, str | None]:
    """Why a gate may have refused: the contact's stop reason and the campaign's status."""
    stopped = session.scalar(select(Contact.stopped_reason).where(Contact.id == contact_id))
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    return stopped, status
