"""Planning a step into execution rows and handing out the rows that are due.

The database is the cursor (DESIGN R1, R5): a step is planned incrementally, contact by
contact as its previous step becomes terminal, and the step workflow only ever holds a
bounded page of ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, func, literal, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from db.dialect import dialect_insert, insert_many, refresh_statistics
from db.engine import changed_rows
from db.events import record_event
from db.models import Campaign, CampaignPause, Contact, Enrollment, Sender, Step, StepExecution
from db.types import UTCDateTime
from db.warmup import sender_ramp
from domain.calendar import LocalWindow, add_span, zone
from domain.durations import Span
from domain.slotting import SenderCapacity, Slotter
from schemas.activity_io import OPEN_COUNT_CAP, FetchDueResult, PlanStepResult
from schemas.campaign_file import CampaignFile
from schemas.enums import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    Channel,
    EnrollmentStatus,
    ExecutionStatus,
    SkipReason,
)
from schemas.events import EventType, StepData
from schemas.workflow_io import PAGE_OF_ENROLLMENTS, PlanCursor

PAGE = PAGE_OF_ENROLLMENTS
CHANGED_PAGE = 1000  # contacts per candidate query of a replan from a cursor (an IN list)
# A bulk pass changes the table's statistics enough to mislead the planner of later
# queries (fetching due rows, other campaigns), so it refreshes them once at its end. Its
# own queries read ranges of ids, as do replans from a cursor (every few seconds while
# the previous step sends), where an ANALYZE each time cost more than the replan itself.
ANALYZE_AFTER_ROWS = 1000
_OPEN = [s.value for s in OPEN_STATUSES]
_CLAIMABLE = [s.value for s in WAITING_STATUSES]
_TERMINAL = [s.value for s in TERMINAL_STATUSES]
_BOOKED = [*_OPEN, ExecutionStatus.SENT.value]


@dataclass(frozen=True, slots=True)
class Candidate:
    contact_id: int
    sender_id: int | None
    has_address: bool
    timezone: str | None
    previous_status: str | None
    previous_done_at: datetime | None
    stopped_reason: str | None
    enrollment_status: str = EnrollmentStatus.ACTIVE


def step_context(session: Session, step_id: int) -> tuple[Step, Step | None, Campaign, CampaignFile]:
    step = session.get_one(Step, step_id)
    previous = session.scalar(
        select(Step).where(Step.campaign_id == step.campaign_id, Step.position == step.position - 1)
    )
    campaign = session.get_one(Campaign, step.campaign_id)
    return step, previous, campaign, CampaignFile.model_validate(campaign.definition)


def make_slotter(session: Session, spec: CampaignFile, channel: Channel) -> Slotter:
    quiet = spec.quiet_hours and channel is not Channel.EMAIL
    return Slotter(
        window=LocalWindow.of(spec.window, quiet_hours=quiet),
        gap_seconds=spec.send_gap.seconds,
        jitter_seconds=spec.jitter.seconds,
        booked=lambda sender, start, end: _booked(session, sender, start, end),
        last_slot=lambda sender: session.scalar(
            select(func.max(StepExecution.scheduled_for)).where(
                StepExecution.sender_id == sender, StepExecution.status.in_(_OPEN)
            )
        ),
    )


def _booked(session: Session, sender_id: int, start: datetime, end: datetime) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                StepExecution.sender_id == sender_id,
                StepExecution.status.in_(_BOOKED),
                StepExecution.scheduled_for >= start,
                StepExecution.scheduled_for < end,
            )
        )
        or 0
    )


def plan_step(
    session: Session,
    step_id: int,
    now: datetime,
    since: PlanCursor | None = None,
    *,
    resume_after: int | None = None,
    budget: int | None = None,
) -> PlanStepResult:
    """Create the rows of every contact now eligible for this step; skip with a reason
    those who cannot receive it. Safe to repeat: the (step, contact) key is unique.

    With `since`, only the previous step's rows that changed after that cursor are read
    (a few seconds of sends instead of every enrollment); without it, or once the previous
    step has finished, every enrollment is: all at once, or, with `budget`, that many
    enrollments a call in contact order from `resume_after`, the result saying where the
    pass goes on (`resume_after`) until it has read them all."""
    step, previous, campaign, spec = step_context(session, step_id)
    # Read "previous finished" before looking for candidates: if it was, every row of the
    # previous step is terminal and this pass plans all that remain.
    previous_finished = previous is None or previous.finished_at is not None
    # The next pass's cursor is read before this pass looks for candidates, too.
    cursor = None if previous is None or previous_finished else previous_step_cursor(session, previous.id, now)
    channel = Channel(step.channel)
    slotter = make_slotter(session, spec, channel)
    senders = _capacities(session, campaign.id)
    pauses = _pauses(session, campaign.id)
    campaign_tz = zone(campaign.timezone)
    gap = Span(step.wait_days + (step.day - previous.day if previous else 0), step.wait_seconds)
    planned = skipped = 0
    pages: Iterator[list[Candidate] | _GoesOn]
    resume: int | None = None
    if since is not None and previous is not None and not previous_finished:
        incremental, pages = True, _changed_candidates(session, step, previous, channel, since)
    else:
        incremental, pages = False, _candidates(session, step, previous, channel, resume_after or 0, budget)
    for page in pages:
        if isinstance(page, _GoesOn):
            resume = page.after
            break
        rows = []
        for candidate in page:
            row = _plan_row(step, candidate, senders, slotter, pauses, campaign_tz, gap, now)
            planned += row["status"] == ExecutionStatus.SCHEDULED.value
            skipped += row["status"] == ExecutionStatus.SKIPPED.value
            rows.append(row)
        insert_many(session, dialect_insert(session, StepExecution).on_conflict_do_nothing(), rows)
    if planned + skipped >= ANALYZE_AFTER_ROWS and not incremental and budget is None:
        refresh_statistics(session, StepExecution.__tablename__)
    open_rows, next_due = _open_summary(session, step.id)
    return PlanStepResult(
        planned=planned,
        skipped=skipped,
        previous_finished=previous_finished,
        open_rows=open_rows,
        next_due=next_due,
        cursor=cursor,
        resume_after=resume,
    )


@dataclass(frozen=True, slots=True)
class _GoesOn:
    """A pass with a budget stops here; the next call reads enrollments above `after`."""

    after: int


def _plan_row(
    step: Step,
    candidate: Candidate,
    senders: dict[int, SenderCapacity],
    slotter: Slotter,
    pauses: list[tuple[datetime, datetime]],
    campaign_tz: Any,
    gap: Span,
    now: datetime,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "campaign_id": step.campaign_id,
        "step_id": step.id,
        "contact_id": candidate.contact_id,
        "sender_id": candidate.sender_id,
        "updated_at": now,
        "scheduled_for": None,
        "skip_reason": None,
    }
    reason = _skip_reason(candidate)
    if reason is not None:
        return row | {"status": ExecutionStatus.SKIPPED.value, "skip_reason": reason.value}
    assert step.start_at is not None
    assert candidate.sender_id is not None
    due = step.start_at
    if candidate.previous_done_at is not None:
        after_previous = add_span(candidate.previous_done_at, gap, campaign_tz)
        due = max(due, after_previous + paused_since(pauses, candidate.previous_done_at))
    tz = zone(candidate.timezone, fallback=str(campaign_tz))
    slot = slotter.slot(senders[candidate.sender_id], due, tz, f"{step.id}:{candidate.contact_id}")
    return row | {"status": ExecutionStatus.SCHEDULED.value, "scheduled_for": slot}


def _skip_reason(candidate: Candidate) -> SkipReason | None:
    if candidate.enrollment_status == EnrollmentStatus.UNVERIFIED:
        return SkipReason.UNVERIFIED
    if candidate.stopped_reason is not None:
        try:
            return SkipReason(candidate.stopped_reason)
        except ValueError:
            return SkipReason.SUPPRESSED
    if not candidate.has_address or candidate.sender_id is None:
        return SkipReason.NO_ADDRESS
    return None


def paused_since(pauses: list[tuple[datetime, datetime]], moment: datetime) -> timedelta:
    """How long the campaign was paused after `moment` (closed pauses only)."""
    total = timedelta()
    for paused_at, resumed_at in pauses:
        total += max(timedelta(), resumed_at - max(paused_at, moment))
    return total


def _pauses(session: Session, campaign_id: int) -> list[tuple[datetime, datetime]]:
    rows = session.execute(
        select(CampaignPause.paused_at, CampaignPause.resumed_at).where(
            CampaignPause.campaign_id == campaign_id, CampaignPause.resumed_at.is_not(None)
        )
    ).all()
    return [(paused, resumed) for paused, resumed in rows if resumed is not None]


def _capacities(session: Session, campaign_id: int) -> dict[int, SenderCapacity]:
    from db.models import CampaignSender

    senders = session.scalars(
        select(Sender)
        .join(CampaignSender, CampaignSender.sender_id == Sender.id)
        .where(CampaignSender.campaign_id == campaign_id)
    ).all()
    return {
        sender.id: SenderCapacity(sender.id, sender.daily_limit, zone(sender.timezone), sender_ramp(sender))
        for sender in senders
    }


def _candidate_query(
    step: Step, previous: Step | None, channel: Channel, contacts: tuple[int, int | None] | None = None
) -> Select[Any]:
    """Enrolled contacts without a row for this step whose previous step is terminal;
    with `contacts` (low, high], only those ids, also inside both joins, so each side reads
    that range off its index instead of the whole step."""
    current = aliased(StepExecution)
    prior = aliased(StepExecution)
    address = Contact.email if channel is Channel.EMAIL else Contact.phone
    sender_column = getattr(Enrollment, f"{channel.value}_sender_id")
    columns: list[Any] = [Contact.id, sender_column, address.is_not(None), Contact.timezone]
    if previous is not None:
        columns += [prior.status, func.coalesce(prior.sent_at, prior.updated_at)]

    def within(column: Any) -> list[ColumnElement[bool]]:
        if contacts is None:
            return []
        low, high = contacts
        return [column > low] + ([column <= high] if high is not None else [])

    query = (
        select(*columns, Enrollment.status, Contact.stopped_reason)
        .select_from(Enrollment)
        .join(Contact, Contact.id == Enrollment.contact_id)
        .outerjoin(
            current,
            and_(current.step_id == step.id, current.contact_id == Enrollment.contact_id, *within(current.contact_id)),
        )
        .where(Enrollment.campaign_id == step.campaign_id, current.id.is_(None), *within(Enrollment.contact_id))
    )
    if previous is not None:
        query = query.join(
            prior,
            and_(prior.step_id == previous.id, prior.contact_id == Enrollment.contact_id, *within(prior.contact_id)),
        ).where(prior.status.in_(_TERMINAL))
    return query


def _candidates(
    session: Session, step: Step, previous: Step | None, channel: Channel, low: int = 0, budget: int | None = None
) -> Iterator[list[Candidate] | _GoesOn]:
    """Every candidate above contact `low`, in contact order, a range of PAGE enrollments at
    a time; with `budget`, after that many enrollments a `_GoesOn` says where to go on.

    The ranges come from the enrollments first, so each candidate query reads one range of
    this step's rows, not all of them: asking for "the next PAGE candidates" made the
    database hash every row of the step again for every page (quadratic in a bulk pass)."""
    read = 0
    while True:
        if budget is not None and read >= budget:
            more = session.scalar(
                select(Enrollment.contact_id)
                .where(Enrollment.campaign_id == step.campaign_id, Enrollment.contact_id > low)
                .limit(1)
            )
            if more is not None:
                yield _GoesOn(low)
            return
        read += PAGE
        high = session.scalar(
            select(Enrollment.contact_id)
            .where(Enrollment.campaign_id == step.campaign_id, Enrollment.contact_id > low)
            .order_by(Enrollment.contact_id)
            .offset(PAGE - 1)
            .limit(1)
        )  # None: the last range, open-ended
        query = _candidate_query(step, previous, channel, (low, high))
        rows = session.execute(query.order_by(Contact.id)).all()
        if rows:
            yield [_candidate(tuple(row), previous is not None) for row in rows]
        if high is None:
            return
        low = high


def previous_step_cursor(session: Session, previous_step_id: int, now: datetime) -> PlanCursor:
    """Where the next pass starts: the first of the previous step's open rows in the order
    rows leave (slot, then id; never after `now`) and its highest row id, both read before
    this pass's candidates.

    Why nothing is missed: a row the next pass has not seen terminal was, when this was
    read, either open, so at or after (`scheduled_from`, `from_id`) (rows only ever move
    later: deferrals, holds and resumes re-slot from their own later time), or not yet
    there, so its id is above `after_id` (the previous step's planner is the only one
    adding its rows). Any row terminal already then is found by this pass. The step
    workflow still reads every enrollment now and then, and once the previous step has
    finished."""
    first_open = [
        session.execute(
            select(StepExecution.scheduled_for, StepExecution.id)
            .where(
                StepExecution.step_id == previous_step_id,
                StepExecution.status == status,
                StepExecution.scheduled_for.is_not(None),
            )
            .order_by(StepExecution.scheduled_for, StepExecution.id)
            .limit(1)
        ).first()
        for status in _OPEN  # one index lookup per status; across an IN list it would be a sort
    ]
    scheduled_from, from_id = min([(now, 0), *((row[0], row[1]) for row in first_open if row is not None)])
    highest = session.scalar(
        select(func.max(StepExecution.id)).where(StepExecution.step_id == previous_step_id)
    )  # off the (step_id, id) index
    return PlanCursor(scheduled_from=scheduled_from, from_id=from_id, after_id=highest or 0)


def _changed_candidates(
    session: Session, step: Step, previous: Step, channel: Channel, since: PlanCursor
) -> Iterator[list[Candidate]]:
    """The candidates among the previous step's rows that changed after `since`.

    The changed rows are found first, by themselves: rows from the cursor on (off the due
    index) and rows added since (off the step-rows index), two narrow queries rather than
    one with OR. Only then are their contacts joined, by id, so the database never gets
    to plan the join from an enrollment count it has not noticed yet (stale statistics
    made it walk every enrollment)."""
    changed = (
        tuple_(StepExecution.scheduled_for, StepExecution.id)
        >= tuple_(literal(since.scheduled_from, UTCDateTime()), literal(since.from_id)),
        StepExecution.id > since.after_id,
    )
    contacts: set[int] = set()
    for narrowed in changed:
        contacts.update(
            session.scalars(
                select(StepExecution.contact_id).where(
                    StepExecution.step_id == previous.id, StepExecution.status.in_(_TERMINAL), narrowed
                )
            )
        )
    query = _candidate_query(step, previous, channel)
    ordered = sorted(contacts)
    for start in range(0, len(ordered), CHANGED_PAGE):
        chunk = ordered[start : start + CHANGED_PAGE]
        rows = session.execute(query.where(Enrollment.contact_id.in_(chunk)).order_by(Contact.id)).all()
        if rows:
            yield [_candidate(tuple(row), True) for row in rows]


def _candidate(row: tuple[Any, ...], has_previous: bool) -> Candidate:
    contact_id, sender_id, has_address, timezone = row[:4]
    previous_status, previous_done_at = row[4:6] if has_previous else (None, None)
    return Candidate(contact_id, sender_id, has_address, timezone, previous_status, previous_done_at, row[-1], row[-2])


RESLOT_POLL_SECONDS = 5.0  # how often a step looks for rows a resume's batches made due


def _open_summary(
    session: Session, step_id: int, retries_besides: Sequence[int] | None = None
) -> tuple[int, datetime | None]:
    """Open rows (counted up to OPEN_COUNT_CAP) and the earliest scheduled slot; with
    `retries_besides` (the executions the workflow has in flight, whose holds are their
    running attempts'), also the earliest retry of a message waiting for its next attempt
    (SENDING, held until then)."""
    open_rows = (
        select(StepExecution.id)
        .where(StepExecution.step_id == step_id, StepExecution.status.in_(_OPEN))
        .limit(OPEN_COUNT_CAP)
        .subquery()
    )
    next_due = session.scalar(
        select(func.min(StepExecution.scheduled_for)).where(
            StepExecution.step_id == step_id, StepExecution.status == ExecutionStatus.SCHEDULED.value
        )
    )
    if retries_besides is not None:
        retries = select(StepExecution.lease_until).where(
            StepExecution.step_id == step_id,
            StepExecution.status == ExecutionStatus.SENDING.value,
            StepExecution.lease_until.is_not(None),
        )
        if retries_besides:
            retries = retries.where(StepExecution.id.not_in(retries_besides))
        next_retry = session.scalar(retries.order_by(StepExecution.scheduled_for, StepExecution.id).limit(1))
        if next_retry is not None:
            next_due = min(next_due, next_retry) if next_due else next_retry
    return session.scalar(select(func.count()).select_from(open_rows)) or 0, next_due


def fetch_due(
    session: Session,
    step_id: int,
    now: datetime,
    limit: int,
    lease_seconds: int,
    exclude: list[int],
    claim_token: str | None = None,
) -> FetchDueResult:
    """Atomically move due rows to QUEUED with a lease and return their ids in slot order.

    The rows are stamped with `claim_token` (the workflow run and this fetch's sequence
    number): a retry of the same fetch, after a worker died while it committed, gets the
    same rows back instead of claiming others and stranding these (DESIGN R18). Rows whose
    lease expired (claimed by a fetch whose workflow never heard of it) can be claimed
    again; ids the workflow still has in flight are never handed out twice."""
    lease_until = now + timedelta(seconds=lease_seconds)
    # While a resume's batches still re-slot the campaign, a row counts as due only once its
    # slot plus the paused time has passed: exactly when it is due if not moved yet, and
    # later (never earlier) if moved already; the earliest rows go first either way.
    shift = session.scalar(
        select(Campaign.reslot_seconds)
        .join(Step, Step.campaign_id == Campaign.id)
        .where(Step.id == step_id, Campaign.reslot_from.is_not(None))
    )
    due_by = now - timedelta(seconds=shift or 0)
    rows = _earlier_claim(session, step_id, claim_token, now) if claim_token else []
    if rows:
        session.execute(
            update(StepExecution).where(StepExecution.id.in_([row.id for row in rows])).values(lease_until=lease_until)
        )
    elif limit > 0:
        waiting, retrying = _due_rows(session, step_id, now, limit, exclude, due_by)
        rows = sorted(_claim(session, step_id, waiting, now, lease_until, claim_token) + retrying)
    open_rows, next_due = _open_summary(session, step_id, retries_besides=exclude)
    if shift is not None:
        # Due later by the shift; and each batch may move rows nearer: look again soon.
        soon = now + timedelta(seconds=RESLOT_POLL_SECONDS)
        next_due = min(next_due + timedelta(seconds=shift), soon) if next_due else soon
    return FetchDueResult(
        execution_ids=[row.id for row in rows],
        contact_ids=[row.contact_id for row in rows],
        sender_ids=[row.sender_id for row in rows],
        next_due=next_due,
        open_rows=open_rows,
    )


class DueRow(NamedTuple):
    slot: datetime
    id: int
    contact_id: int
    sender_id: int


_DUE_COLUMNS = (StepExecution.scheduled_for, StepExecution.id, StepExecution.contact_id, StepExecution.sender_id)


def _due(rows: Sequence[Any], now: datetime) -> list[DueRow]:
    return [DueRow(when or now, execution, contact, sender) for when, execution, contact, sender in rows]


def _earlier_claim(session: Session, step_id: int, claim_token: str, now: datetime) -> list[DueRow]:
    """The rows an earlier attempt of this very fetch claimed, still waiting for their send."""
    page = session.execute(
        select(*_DUE_COLUMNS)
        .where(
            StepExecution.step_id == step_id,
            StepExecution.claim_token == claim_token,
            StepExecution.status == ExecutionStatus.QUEUED.value,
        )
        .order_by(StepExecution.scheduled_for, StepExecution.id)
    ).all()
    return _due(page, now)


def _due_rows(
    session: Session, step_id: int, now: datetime, limit: int, exclude: list[int], due_by: datetime | None = None
) -> tuple[list[DueRow], list[DueRow]]:
    """Rows whose slot is at or before `due_by` (default `now`) and claims whose lease ran
    out (to claim), and messages whose own retry has come (SENDING, their hold run out:
    handed out as they are, since only `claim_retry` may take a SENDING row)."""
    due_by = due_by or now
    scheduled = and_(StepExecution.status == ExecutionStatus.SCHEDULED.value, StepExecution.scheduled_for <= due_by)
    expired = and_(StepExecution.status == ExecutionStatus.QUEUED.value, StepExecution.lease_until < now)
    retry_due = and_(
        StepExecution.status == ExecutionStatus.SENDING.value,
        StepExecution.scheduled_for <= due_by,
        StepExecution.lease_until <= now,
    )
    if due_by < now:
        expired = and_(expired, StepExecution.scheduled_for <= due_by)
    # A query per kind, not one with OR: each reads its first page off the due index in
    # slot order, where the OR made the database sort every due row of the step.
    pages: list[list[DueRow]] = []
    for due in (scheduled, expired, retry_due):
        query = select(*_DUE_COLUMNS).where(StepExecution.step_id == step_id, due)
        if exclude:
            query = query.where(StepExecution.id.not_in(exclude))
        page = session.execute(query.order_by(StepExecution.scheduled_for, StepExecution.id).limit(limit)).all()
        pages.append(_due(page, now))
    first = set(sorted(row for page in pages for row in page)[:limit])
    waiting = [row for row in pages[0] + pages[1] if row in first]
    return waiting, [row for row in pages[2] if row in first]


def _claim(
    session: Session,
    step_id: int,
    rows: list[DueRow],
    now: datetime,
    lease_until: datetime,
    claim_token: str | None,
) -> list[DueRow]:
    """QUEUED, only for rows still waiting: a row a lifecycle change closed, or a send took,
    between the read and this write stays as it is and is not handed out."""
    if not rows:
        return []
    claimed = set(
        session.scalars(
            update(StepExecution)
            .where(StepExecution.id.in_([row.id for row in rows]), StepExecution.status.in_(_CLAIMABLE))
            .values(
                status=ExecutionStatus.QUEUED.value, lease_until=lease_until, claim_token=claim_token, updated_at=now
            )
            .returning(StepExecution.id)
        )
    )
    return [row for row in rows if row.id in claimed]


def mark_step_finished(session: Session, step_id: int, now: datetime) -> None:
    """Once: the step's finish time, and `step.finished` with its messages by outcome."""
    finished = session.execute(
        update(Step)
        .where(Step.id == step_id, Step.finished_at.is_(None))
        .values(finished_at=now)
        .execution_options(synchronize_session=False)
    )
    if changed_rows(finished) != 1:
        return
    campaign_id, position, workspace_id = session.execute(
        select(Step.campaign_id, Step.position, Campaign.workspace_id)
        .join(Campaign, Campaign.id == Step.campaign_id)
        .where(Step.id == step_id)
    ).one()
    by_status = select(StepExecution.status, func.count()).where(StepExecution.step_id == step_id)
    counts = session.execute(by_status.group_by(StepExecution.status)).all()
    data = StepData(
        campaign_id=campaign_id, step=position, counts={status: int(count) for status, count in counts}, at=now
    )
    record_event(session, EventType.STEP_FINISHED, data, now, workspace_id)
