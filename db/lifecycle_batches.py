"""The bulk half of a lifecycle change, in bounded batches (DESIGN R20).

Pause, resume and cancel commit their one-row gate change first (`db.lifecycle`), so every
send meets the new state at once. What follows here touches every open row of a campaign,
which at a million contacts is far too much for one transaction: it held row locks for
minutes, deadlocked with the sends in flight and kept the gate open all the while. Each
batch is its own short transaction over at most `BATCH` rows of one step, taken
`FOR UPDATE SKIP LOCKED` on PostgreSQL so a row a send is writing is passed over and
picked up by a later sweep instead of waited for. Every batch is idempotent (its condition
excludes the rows it has already done), and `Progress` says where to pick up after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, literal, or_, select, update
from sqlalchemy.orm import Session

from db.dialect import dialect_insert
from db.engine import SessionFactory, unit_of_work
from db.lifecycle import PauseShift
from db.models import Campaign, Contact, Enrollment, Step, StepExecution
from db.types import UTCDateTime
from schemas.enums import WAITING_STATUSES, ExecutionStatus

BATCH = 2000
_WAITING = [s.value for s in WAITING_STATUSES]
# A row passed over because a send held its lock is looked at again this often; those
# locks last one autocommit statement, so a sweep or two finds every row free.
LOCKED_RETRY_SECONDS = 0.05
MAX_LOCKED_SWEEPS = 200  # in a row, finding only locked rows: then let the activity retry


@dataclass
class Progress:
    """Where a settle stands: phase, step (index into the campaign's steps) and the last id
    done; sent as the activity's heartbeat so a retry resumes there."""

    phase: str = "rows"
    step: int = 0
    after: int = 0
    rows: int = 0
    unplanned: int = 0

    def as_details(self) -> list[object]:
        return [self.phase, self.step, self.after, self.rows, self.unplanned]

    @classmethod
    def from_details(cls, details: list[object] | tuple[object, ...]) -> Progress:
        if len(details) != 5:
            return cls()
        phase, step, after, rows, unplanned = details
        return cls(str(phase), int(str(step)), int(str(after)), int(str(rows)), int(str(unplanned)))


Heartbeat = Callable[[Progress], None]


def step_ids(sessions: SessionFactory, campaign_id: int) -> list[int]:
    with sessions() as session:
        return list(session.scalars(select(Step.id).where(Step.campaign_id == campaign_id).order_by(Step.position)))


def cancel_open_rows(
    sessions: SessionFactory, campaign_id: int, now: datetime, progress: Progress, heartbeat: Heartbeat
) -> None:
    """Every waiting row (SCHEDULED, QUEUED) becomes CANCELLED, then every (step, contact)
    pair never planned gets a CANCELLED row, so the campaign's counts add up. Rows already
    SENDING passed the gate before it closed and are left to their send."""
    steps = step_ids(sessions, campaign_id)
    if progress.phase == "rows":
        while progress.step < len(steps):
            step_id = steps[progress.step]

            def batch(session: Session, step_id: int = step_id) -> int | None:
                return _cancel_batch(session, step_id, now)

            _sweep(sessions, batch, heartbeat, progress)
            progress.step += 1
            heartbeat(progress)
        progress.phase, progress.step, progress.after = "unplanned", 0, 0
        heartbeat(progress)
    while progress.step < len(steps):
        while (
            added := _cancel_unplanned_batch(sessions, campaign_id, steps[progress.step], now, progress)
        ) is not None:
            progress.unplanned += added
            heartbeat(progress)
        progress.step, progress.after = progress.step + 1, 0
        heartbeat(progress)


def _sweep(
    sessions: SessionFactory, batch: Callable[[Session], int | None], heartbeat: Heartbeat, progress: Progress
) -> None:
    """Run `batch` (one transaction each) until it finds nothing left; a batch returns the
    rows it changed, or None when only rows it could not lock are left. As many batches as
    the step has rows; only sweeps that find everything locked are limited."""
    locked_sweeps = 0
    while True:
        with unit_of_work(sessions) as session:
            changed = batch(session)
        if changed == 0:
            return
        if changed is None:
            locked_sweeps += 1
            if locked_sweeps >= MAX_LOCKED_SWEEPS:
                raise RuntimeError(
                    "rows stayed locked through every sweep; the activity retries from its last heartbeat"
                )
            time.sleep(LOCKED_RETRY_SECONDS)
            continue
        locked_sweeps = 0
        progress.rows += changed
        heartbeat(progress)


def _cancel_batch(session: Session, step_id: int, now: datetime) -> int | None:
    waiting = (StepExecution.step_id == step_id, StepExecution.status.in_(_WAITING))
    ids = list(session.scalars(select(StepExecution.id).where(*waiting).limit(BATCH).with_for_update(skip_locked=True)))
    if not ids:
        return None if session.scalar(select(exists().where(*waiting))) else 0
    session.execute(
        update(StepExecution)
        .where(StepExecution.id.in_(ids), StepExecution.status.in_(_WAITING))
        .values(status=ExecutionStatus.CANCELLED.value, lease_until=None, claim_token=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def _cancel_unplanned_batch(
    sessions: SessionFactory, campaign_id: int, step_id: int, now: datetime, progress: Progress
) -> int | None:
    """The next BATCH enrollments (by contact) get a CANCELLED row for this step where they
    have none. None when the step's enrollments are all done."""
    with unit_of_work(sessions) as session:
        contacts = list(
            session.scalars(
                select(Enrollment.contact_id)
                .where(Enrollment.campaign_id == campaign_id, Enrollment.contact_id > progress.after)
                .order_by(Enrollment.contact_id)
                .limit(BATCH)
            )
        )
        if not contacts:
            return None
        unplanned = select(
            Enrollment.campaign_id,
            literal(step_id),
            Enrollment.contact_id,
            literal(ExecutionStatus.CANCELLED.value),
            literal(now, UTCDateTime()),
        ).where(Enrollment.campaign_id == campaign_id, Enrollment.contact_id.between(contacts[0], contacts[-1]))
        added = session.scalars(
            dialect_insert(session, StepExecution)
            .from_select(["campaign_id", "step_id", "contact_id", "status", "updated_at"], unplanned)
            .on_conflict_do_nothing()
            .returning(StepExecution.id)
        ).all()
        progress.after = contacts[-1]
        return len(added)


def reslot_open_rows(
    sessions: SessionFactory,
    campaign_id: int,
    paused_at: datetime,
    resumed_at: datetime,
    progress: Progress,
    heartbeat: Heartbeat,
) -> None:
    """After a pause, each waiting row moves to max(resume, old slot + paused time), then
    into its window, keeping the order (DESIGN R9). A row is done once written at
    `resumed_at` or later, which is also what makes a batch safe to run twice.

    Sending has resumed meanwhile: while `campaigns.reslot_from` is `resumed_at`,
    `fetch_due` hands out only rows already moved. So the batches take each step's rows in
    slot order, one batch per step in turn, and the earliest rows of every step are the
    first ones sendable again; the mark is cleared once every row has moved."""
    with sessions() as session:
        shift = PauseShift.of(session, campaign_id, resumed_at - paused_at, resumed_at)
    steps = step_ids(sessions, campaign_id)
    pending = list(steps)
    locked_sweeps = 0
    while pending:
        found_locked = False
        for step_id in list(pending):
            with unit_of_work(sessions) as session:
                changed = _reslot_batch(session, step_id, shift)
            if changed == 0:
                pending.remove(step_id)
            elif changed is None:
                found_locked = True
            else:
                progress.rows += changed
        heartbeat(progress)
        if found_locked and pending:
            locked_sweeps += 1
            if locked_sweeps >= MAX_LOCKED_SWEEPS:
                raise RuntimeError("rows stayed locked through every sweep; the activity retries")
            time.sleep(LOCKED_RETRY_SECONDS)
        else:
            locked_sweeps = 0
    with unit_of_work(sessions) as session:
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.reslot_from == resumed_at)
            .values(reslot_from=None, reslot_seconds=None)
            .execution_options(synchronize_session=False)
        )


def _reslot_batch(session: Session, step_id: int, shift: PauseShift) -> int | None:
    resumed_at = shift.resumed_at
    not_done = (
        StepExecution.step_id == step_id,
        StepExecution.status.in_(_WAITING),
        or_(StepExecution.updated_at.is_(None), StepExecution.updated_at < resumed_at),
    )
    rows: list[Any] = []
    # One status at a time, so each page is read off the due index in slot order.
    for status in _WAITING:
        rows += session.execute(
            select(StepExecution.id, StepExecution.scheduled_for, Step.channel, Contact.timezone)
            .join(Step, Step.id == StepExecution.step_id)
            .join(Contact, Contact.id == StepExecution.contact_id)
            .where(*not_done, StepExecution.status == status)
            .order_by(StepExecution.scheduled_for, StepExecution.id)
            .limit(BATCH - len(rows))
            .with_for_update(skip_locked=True, of=StepExecution)
        ).all()
        if len(rows) >= BATCH:
            break
    if not rows:
        return None if session.scalar(select(exists().where(*not_done))) else 0
    changes = [
        {"row_id": row_id, "slot": shift.slot(scheduled_for, channel, contact_timezone), "done_at": resumed_at}
        for row_id, scheduled_for, channel, contact_timezone in rows
    ]
    session.connection().execute(_RESLOT, changes)
    return len(rows)


_EXECUTIONS = cast(Table, StepExecution.__table__)
_RESLOT = (
    update(_EXECUTIONS)
    .where(
        _EXECUTIONS.c.id == bindparam("row_id"),
        # Two equalities, not IN: an expanding IN cannot be used with executemany.
        or_(*(_EXECUTIONS.c.status == status for status in _WAITING)),
    )
    .values(
        status=ExecutionStatus.SCHEDULED.value,
        scheduled_for=bindparam("slot"),
        lease_until=None,
        claim_token=None,
        updated_at=bindparam("done_at"),
    )
)
