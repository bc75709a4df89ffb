"""Campaign progress counted in SQL (DESIGN R13: `status` takes counts from the database)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Campaign, DeadLetter, Enrollment, Step, StepExecution
from schemas.enums import ExecutionStatus
from schemas.reports import CampaignReport, StepReport


def campaign_report(session: Session, campaign_id: int) -> CampaignReport | None:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    enrolled = session.scalar(select(func.count()).where(Enrollment.campaign_id == campaign_id)) or 0
    steps = {
        step.id: StepReport(
            position=step.position, channel=step.channel, start_at=step.start_at, finished=step.finished_at is not None
        )
        for step in session.scalars(select(Step).where(Step.campaign_id == campaign_id).order_by(Step.position))
    }
    rows = session.execute(
        select(StepExecution.step_id, StepExecution.status, StepExecution.skip_reason, func.count())
        .where(StepExecution.campaign_id == campaign_id)
        .group_by(StepExecution.step_id, StepExecution.status, StepExecution.skip_reason)
    ).all()
    planned = dict.fromkeys(steps, 0)
    for step_id, status, reason, count in rows:
        report = steps[step_id]
        planned[step_id] += count
        _add(report, ExecutionStatus(status), reason, count)
    if campaign.enrolled_at is not None:
        for step_id, report in steps.items():
            report.not_planned = max(enrolled - planned[step_id], 0)
    dead = session.scalar(select(func.count()).where(DeadLetter.campaign_id == campaign_id)) or 0
    return CampaignReport(
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        lifecycle_version=campaign.lifecycle_version,
        enrolled=enrolled,
        launched_at=campaign.launched_at,
        finished_at=campaign.finished_at,
        dead_letters=dead,
        steps=list(steps.values()),
    )


def _add(report: StepReport, status: ExecutionStatus, reason: str | None, count: int) -> None:
    if status in (ExecutionStatus.SCHEDULED, ExecutionStatus.QUEUED):
        report.scheduled += count
    elif status is ExecutionStatus.SENDING:
        report.sending += count
    elif status is ExecutionStatus.SENT:
        report.sent += count
    elif status is ExecutionStatus.SKIPPED:
        key = reason or "unknown"
        report.skipped[key] = report.skipped.get(key, 0) + count
    elif status is ExecutionStatus.FAILED:
        report.failed += count
    elif status is ExecutionStatus.CANCELLED:
        report.cancelled += count
