"""What the follow-up processor looks for, and the reconcile pass's gate closing.

A step workflow plans contacts into rows as their previous step becomes terminal and
sends the rows that are due. If it stops running before its work is done (terminated,
failed, reset by an operator), contacts fall through: due for the step but with no row,
or with a row nobody will send. These queries find such steps, page by page, with counts
only; the processor then asks the campaign workflow to restart the step (DESIGN R1, R13).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from db.lifecycle import cancel_everything, project_status
from db.models import Campaign, Enrollment, Step, StepExecution
from schemas.enums import TERMINAL_STATUSES, CampaignStatus, ExecutionStatus

_TERMINAL = [s.value for s in TERMINAL_STATUSES]
# Calendar-day waits are computed in the campaign's time zone; an hour of slack covers DST.
DST_SLACK = timedelta(hours=1)
# A row this late with its step workflow gone is stalled (a running step sends it sooner).
STALLED_AFTER = timedelta(minutes=15)
# The campaign states whose gate is open: the workflow must still be running.
OPEN_GATE = [CampaignStatus.ACTIVE.value, CampaignStatus.PAUSED.value]


@dataclass(frozen=True, slots=True)
class DueStep:
    """A started, unfinished step of an active campaign with contacts waiting for it."""

    campaign_id: int
    step_id: int
    position: int
    unplanned: int  # due contacts with no row for this step
    stalled: int  # rows long past their slot and still open


@dataclass(frozen=True, slots=True)
class DuePage:
    steps: list[DueStep]
    last_step_id: int  # the cursor for the next page
    more: bool


def due_steps(session: Session, now: datetime, *, after_step_id: int = 0, limit: int = 100) -> DuePage:
    """Among started, unfinished steps of active campaigns (ids after `after_step_id`, at
    most `limit` looked at), those with contacts that should have been sent by now."""
    steps = session.scalars(
        select(Step)
        .join(Campaign, Campaign.id == Step.campaign_id)
        .where(
            Campaign.status == CampaignStatus.ACTIVE.value,
            Step.start_at <= now,
            Step.finished_at.is_(None),
            Step.id > after_step_id,
        )
        .order_by(Step.id)
        .limit(limit)
    ).all()
    found = []
    for step in steps:
        unplanned = count_unplanned(session, step, now)
        stalled = count_stalled(session, step.id, now)
        if unplanned or stalled:
            found.append(DueStep(step.campaign_id, step.id, step.position, unplanned, stalled))
    last = steps[-1].id if steps else after_step_id
    return DuePage(found, last, more=len(steps) == limit)


def count_unplanned(session: Session, step: Step, now: datetime) -> int:
    """Enrolled contacts whose previous step ended longer ago than this step's wait (or,
    for the first step, every contact) and who have no row for this step."""
    current = aliased(StepExecution)
    query = (
        select(func.count())
        .select_from(Enrollment)
        .outerjoin(current, and_(current.step_id == step.id, current.contact_id == Enrollment.contact_id))
        .where(Enrollment.campaign_id == step.campaign_id, current.id.is_(None))
    )
    previous = session.scalar(
        select(Step).where(Step.campaign_id == step.campaign_id, Step.position == step.position - 1)
    )
    if previous is not None:
        wait = timedelta(days=step.wait_days + step.day - previous.day, seconds=step.wait_seconds)
        cutoff = now - wait - (DST_SLACK if wait >= timedelta(days=1) else timedelta())
        prior = aliased(StepExecution)
        query = query.join(prior, and_(prior.step_id == previous.id, prior.contact_id == Enrollment.contact_id)).where(
            prior.status.in_(_TERMINAL), func.coalesce(prior.sent_at, prior.updated_at) <= cutoff
        )
    return session.scalar(query) or 0


def count_stalled(session: Session, step_id: int, now: datetime) -> int:
    late = now - STALLED_AFTER
    return (
        session.scalar(
            select(func.count()).where(
                StepExecution.step_id == step_id,
                or_(
                    and_(StepExecution.status == ExecutionStatus.SCHEDULED.value, StepExecution.scheduled_for <= late),
                    and_(StepExecution.status == ExecutionStatus.QUEUED.value, StepExecution.lease_until <= late),
                ),
            )
        )
        or 0
    )


def open_gate_campaigns(session: Session, *, after_id: int = 0, limit: int = 200) -> list[int]:
    """Campaigns whose database gate is open (their workflow should be running)."""
    return list(
        session.scalars(
            select(Campaign.id)
            .where(Campaign.status.in_(OPEN_GATE), Campaign.id > after_id)
            .order_by(Campaign.id)
            .limit(limit)
        )
    )


def close_gate(session: Session, campaign_id: int, state: CampaignStatus, now: datetime) -> int | None:
    """Record that the campaign's workflow closed without saying so: the gate shuts (and for
    a cancel every open or unplanned row is cancelled). Returns the new lifecycle version,
    or None when the gate was already closed."""
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None or campaign.status not in OPEN_GATE:
        return None
    version = campaign.lifecycle_version + 1
    if not project_status(session, campaign_id, state, version, now):
        return None
    if state is CampaignStatus.CANCELLED:
        cancel_everything(session, campaign_id, now)
    return version


def step_positions(session: Session, campaign_id: int) -> list[int]:
    return list(session.scalars(select(Step.position).where(Step.campaign_id == campaign_id).order_by(Step.position)))
