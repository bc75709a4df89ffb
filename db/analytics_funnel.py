"""The campaign funnel, read from the day buckets (so it survives retention purging the
execution rows behind them)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.analytics import COUNTERS
from db.models import Campaign, CampaignStepStats, Enrollment, Step
from schemas.campaign_funnel import CampaignFunnel, DailySends, FunnelStep


def campaign_funnel(session: Session, campaign_id: int) -> CampaignFunnel | None:
    """Totals per step and sends per UTC day and channel; None for an unknown campaign.

    Reads one row per step and day (a campaign of months is a few hundred rows)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    enrolled = session.scalar(select(func.count()).where(Enrollment.campaign_id == campaign_id)) or 0
    steps = {
        step_id: FunnelStep(position=position, channel=channel)
        for step_id, position, channel in session.execute(
            select(Step.id, Step.position, Step.channel).where(Step.campaign_id == campaign_id).order_by(Step.position)
        )
    }
    s = CampaignStepStats
    rows = session.execute(
        select(s.step_id, s.bucket_start, s.skipped_by_reason, s.computed_at, *(getattr(s, name) for name in COUNTERS))
        .where(s.campaign_id == campaign_id, s.period == "day")
        .order_by(s.bucket_start, s.step_id)
    )
    sends: dict[tuple[str, str], int] = defaultdict(int)
    computed_at = None
    for step_id, bucket_start, reasons, computed, *counts in rows:
        step = steps[step_id]
        for name, count in zip(COUNTERS, counts, strict=True):
            setattr(step, name, getattr(step, name) + count)
        for reason, count in (reasons or {}).items():
            step.skipped_by_reason[reason] = step.skipped_by_reason.get(reason, 0) + int(count)
        if counts[COUNTERS.index("sent")]:
            sends[(bucket_start.date().isoformat(), step.channel)] += counts[COUNTERS.index("sent")]
        computed_at = computed if computed_at is None else max(computed_at, computed)
    for step in steps.values():
        step.skipped_by_reason = dict(sorted(step.skipped_by_reason.items()))
    return CampaignFunnel(
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        enrolled=enrolled,
        computed_at=computed_at,
        steps=list(steps.values()),
        sends_per_day=[
            DailySends(day=day, channel=channel, sent=sent) for (day, channel), sent in sorted(sends.items())
        ],
    )
