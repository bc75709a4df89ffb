"""The campaign funnel, read from the day buckets (so it survives retention purging the
execution rows behind them)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.analytics import COUNTERS
from db.models import Campaign, CampaignStepStats, Enrollment, InboundMessage, Step, StepExecution
from domain.inbound_classify import InboundKind
from domain.sms_keywords import SmsIntent
from schemas.campaign_funnel import CampaignFunnel, DailySends, FunnelStep

REPLIES = sorted({InboundKind.REPLY.value, SmsIntent.REPLY.value})  # a person's answer, by email or SMS


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
    for step_id, intent, count in _replies_by_intent(session, campaign_id):
        steps[step_id].replies_by_intent[intent] = count
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


def _replies_by_intent(session: Session, campaign_id: int) -> list[tuple[int, str, int]]:
    """(step id, intent, replies): the replies tied to the campaign's messages, by what they
    mean. Read from the messages themselves: replies are few next to sends. Automatic replies
    and opt-outs have an intent too but are no reply (`replied` does not count them either)."""
    rows = session.execute(
        select(StepExecution.step_id, InboundMessage.intent, func.count())
        .join(StepExecution, StepExecution.id == InboundMessage.execution_id)
        .where(
            StepExecution.campaign_id == campaign_id,
            InboundMessage.classification.in_(REPLIES),
            InboundMessage.intent.is_not(None),
        )
        .group_by(StepExecution.step_id, InboundMessage.intent)
        .order_by(StepExecution.step_id, InboundMessage.intent)
    )
    return [(step_id, str(intent), int(count)) for step_id, intent, count in rows]
