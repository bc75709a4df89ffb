"""Lifecycle projections: the workflow decides, these write what it decided.

Every write is conditional on the lifecycle version, so a late or repeated activity
can never move a campaign backwards (DESIGN R13).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, func, literal, select, update
from sqlalchemy.orm import Session

from db.dialect import dialect_insert
from db.engine import changed_rows
from db.events import record_event
from db.models import Campaign, CampaignPause, Contact, Enrollment, Step, StepExecution
from db.planning import make_slotter
from db.types import UTCDateTime
from domain.calendar import LocalWindow, zone
from schemas.campaign_file import CampaignFile
from schemas.enums import CampaignStatus, Channel, ExecutionStatus
from schemas.events import CampaignData, EventType
from schemas.workflow_io import StepPlan

PAGE = 5000


def project_status(session: Session, campaign_id: int, state: CampaignStatus, version: int, now: datetime) -> bool:
    """Write the campaign's status if this version is newer than the stored one, with the
    event that tells the app (launched, paused, resumed, cancelled, completed)."""
    before = session.execute(
        select(Campaign.status, Campaign.name, Campaign.workspace_id).where(Campaign.id == campaign_id)
    ).one_or_none()
    values: dict[str, object] = {"status": state.value, "lifecycle_version": version}
    if state.finished:
        values["finished_at"] = now
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.lifecycle_version < version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if changed_rows(result) != 1:
        return False
    if before is not None and (kind := _lifecycle_event(CampaignStatus(before[0]), state)) is not None:
        data = CampaignData(campaign_id=campaign_id, name=before[1], status=state.value, at=now)
        record_event(session, kind, data, now, before[2])
    return True


def _lifecycle_event(before: CampaignStatus, after: CampaignStatus) -> EventType | None:
    if before == after:
        return None
    if after is CampaignStatus.ACTIVE:
        return EventType.CAMPAIGN_RESUMED if before is CampaignStatus.PAUSED else EventType.CAMPAIGN_LAUNCHED
    return {
        CampaignStatus.PAUSED: EventType.CAMPAIGN_PAUSED,
        CampaignStatus.CANCELLED: EventType.CAMPAIGN_CANCELLED,
        CampaignStatus.COMPLETED: EventType.CAMPAIGN_COMPLETED,
    }.get(after)


def record_pause(session: Session, campaign_id: int, paused_at: datetime) -> None:
    open_pause = session.scalar(
        select(CampaignPause.id).where(CampaignPause.campaign_id == campaign_id, CampaignPause.resumed_at.is_(None))
    )
    if open_pause is None:
        session.add(CampaignPause(campaign_id=campaign_id, paused_at=paused_at))


def record_resume(
    session: Session, campaign_id: int, paused_at: datetime, resumed_at: datetime, *, reslot: bool = True
) -> None:
    """Close the pause interval and move what was waiting by the time it was held; or,
    when the caller re-slots in batches afterwards (`db.lifecycle_batches`), mark the
    campaign as re-slotting from `resumed_at`, so only rows already moved are fetched."""
    updated = session.execute(
        update(CampaignPause)
        .where(CampaignPause.campaign_id == campaign_id, CampaignPause.resumed_at.is_(None))
        .values(resumed_at=resumed_at)
        .execution_options(synchronize_session=False)
    )
    if changed_rows(updated) == 0:
        return  # already resumed by an earlier attempt of this activity
    if reslot:
        reslot_open_rows(session, campaign_id, resumed_at - paused_at, resumed_at)
    else:
        # A pause that ended while an earlier resume's batches still ran adds to their shift.
        earlier = case((Campaign.reslot_from.is_(None), 0.0), else_=func.coalesce(Campaign.reslot_seconds, 0.0))
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(reslot_from=resumed_at, reslot_seconds=earlier + (resumed_at - paused_at).total_seconds())
            .execution_options(synchronize_session=False)
        )


def shift_steps(session: Session, campaign_id: int, plans: list[StepPlan]) -> str | None:
    """Store the steps' starts moved by a pause; the campaign's time zone, to label them."""
    for plan in plans:
        session.execute(update(Step).where(Step.id == plan.step_id).values(start_at=plan.start_at))
    return session.scalar(select(Campaign.timezone).where(Campaign.id == campaign_id))


@dataclass(frozen=True)
class PauseShift:
    """Where a waiting row goes when a pause ends: max(resume, old slot + paused time), then
    into its window in the contact's time zone, so rows keep their order (DESIGN R9).
    Capacity is re-checked at send time by the quota claim."""

    windows: dict[Channel, LocalWindow]
    timezone: str  # the campaign's, for contacts without one
    paused: timedelta
    resumed_at: datetime

    @classmethod
    def of(cls, session: Session, campaign_id: int, paused: timedelta, resumed_at: datetime) -> PauseShift:
        campaign = session.get_one(Campaign, campaign_id)
        spec = CampaignFile.model_validate(campaign.definition)
        windows = {channel: make_slotter(session, spec, channel).window for channel in Channel}
        return cls(windows, campaign.timezone, paused, resumed_at)

    def slot(self, scheduled_for: datetime | None, channel: str, contact_timezone: str | None) -> datetime:
        moved = max(self.resumed_at, (scheduled_for or self.resumed_at) + self.paused)
        return self.windows[Channel(channel)].next_open(moved, zone(contact_timezone, fallback=self.timezone))


def reslot_open_rows(session: Session, campaign_id: int, paused: timedelta, resumed_at: datetime) -> None:
    """Every waiting row of the campaign, in one transaction (histories from before the
    batches, `db.lifecycle_batches`): see `PauseShift`."""
    shift = PauseShift.of(session, campaign_id, paused, resumed_at)
    last = 0
    while True:
        rows = session.execute(
            select(StepExecution.id, StepExecution.scheduled_for, Step.channel, Contact.timezone)
            .join(Step, Step.id == StepExecution.step_id)
            .join(Contact, Contact.id == StepExecution.contact_id)
            .where(
                StepExecution.campaign_id == campaign_id,
                StepExecution.status.in_([ExecutionStatus.SCHEDULED.value, ExecutionStatus.QUEUED.value]),
                StepExecution.id > last,
            )
            .order_by(StepExecution.id)
            .limit(PAGE)
        ).all()
        if not rows:
            return
        changes = [
            {"row_id": row_id, "slot": shift.slot(scheduled_for, channel, timezone)}
            for row_id, scheduled_for, channel, timezone in rows
        ]
        _bulk_reschedule(session, changes)
        last = rows[-1][0]


def _bulk_reschedule(session: Session, changes: list[dict[str, object]]) -> None:
    statement = (
        update(StepExecution.__table__)  # type: ignore[arg-type]
        .where(StepExecution.__table__.c.id == bindparam("row_id"))
        .values(status=ExecutionStatus.SCHEDULED.value, scheduled_for=bindparam("slot"), lease_until=None)
    )
    session.connection().execute(statement, changes)


def cancel_everything(session: Session, campaign_id: int, now: datetime) -> int:
    """Every waiting row and every (step, contact) pair never planned becomes CANCELLED.
    Rows already SENDING passed the gate and are left to finish."""
    cancelled = changed_rows(
        session.execute(
            update(StepExecution)
            .where(
                StepExecution.campaign_id == campaign_id,
                StepExecution.status.in_([ExecutionStatus.SCHEDULED.value, ExecutionStatus.QUEUED.value]),
            )
            .values(status=ExecutionStatus.CANCELLED.value, lease_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    unplanned = (
        select(
            Enrollment.campaign_id,
            Step.id,
            Enrollment.contact_id,
            literal(ExecutionStatus.CANCELLED.value),
            literal(now, UTCDateTime()),
        )
        .join(Step, and_(Step.campaign_id == Enrollment.campaign_id))
        .where(Enrollment.campaign_id == campaign_id)
    )
    session.execute(
        dialect_insert(session, StepExecution)
        .from_select(["campaign_id", "step_id", "contact_id", "status", "updated_at"], unplanned)
        .on_conflict_do_nothing()
    )
    return int(cancelled)
