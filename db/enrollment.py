"""Enrollment: who a campaign reaches, decided once, set-based, at launch.

Contacts are deduplicated across lead groups, suppressed / stopped / busy contacts are
left out, and each enrolled contact gets one sender per channel for all its steps
(follow-ups must come from the same mailbox to stay in the same thread).
"""

from __future__ import annotations

from datetime import datetime
from math import gcd

from sqlalchemy import ColumnElement, Integer, and_, case, exists, func, insert, literal, or_, select
from sqlalchemy.orm import Session, aliased

from db.dialect import refresh_statistics
from db.lifecycle import project_status
from db.models import (
    Campaign,
    CampaignLeadGroup,
    CampaignSender,
    Contact,
    Enrollment,
    LeadGroupMember,
    Sender,
    Step,
    Suppression,
)
from db.types import UTCDateTime
from domain.calendar import add_span, zone
from domain.durations import Span
from domain.time_labels import local_label
from schemas.activity_io import EnrollmentCounts
from schemas.enums import CampaignStatus, Channel, SuppressionKind
from schemas.workflow_io import StepPlan


def suppressed_clause() -> ColumnElement[bool]:
    """True for a contact whose email, phone or email domain is on the suppression list."""
    return exists().where(
        Suppression.workspace_id == Contact.workspace_id,
        or_(
            and_(Suppression.kind == SuppressionKind.EMAIL.value, Suppression.value == Contact.email),
            and_(Suppression.kind == SuppressionKind.PHONE.value, Suppression.value == Contact.phone),
            and_(
                Suppression.kind == SuppressionKind.DOMAIN.value,
                Contact.email.like(literal("%@") + Suppression.value),
            ),
        ),
    )


def _active_elsewhere_clause(campaign_id: int) -> ColumnElement[bool]:
    other = aliased(Enrollment)
    return exists().where(
        other.contact_id == Contact.id,
        other.campaign_id != campaign_id,
        other.status == "active",
        Campaign.id == other.campaign_id,
        Campaign.status.in_([CampaignStatus.ACTIVE.value, CampaignStatus.PAUSED.value]),
    )


def enroll(session: Session, campaign: Campaign, now: datetime) -> EnrollmentCounts:
    """Enroll the campaign's contacts once; a retried call finds the work done."""
    if campaign.enrolled_at is not None:
        enrolled = session.scalar(select(func.count()).where(Enrollment.campaign_id == campaign.id)) or 0
        return EnrollmentCounts(enrolled=enrolled)
    skip_busy = bool(campaign.definition.get("skip_active_elsewhere", True))
    members = (
        select(LeadGroupMember.contact_id)
        .join(CampaignLeadGroup, CampaignLeadGroup.group_id == LeadGroupMember.group_id)
        .where(CampaignLeadGroup.campaign_id == campaign.id)
    )
    in_groups = Contact.id.in_(members)
    counts = EnrollmentCounts(
        candidates=session.scalar(select(func.count()).select_from(members.subquery())) or 0,
        suppressed=_count(session, in_groups, suppressed_clause()),
        stopped=_count(session, in_groups, Contact.stopped_reason.is_not(None)),
        active_elsewhere=_count(session, in_groups, _active_elsewhere_clause(campaign.id)) if skip_busy else 0,
    )
    eligible = [in_groups, ~suppressed_clause(), Contact.stopped_reason.is_(None)]
    if skip_busy:
        eligible.append(~_active_elsewhere_clause(campaign.id))
    rotations = {channel: _rotation(session, campaign.id, channel) for channel in Channel}
    numbered = (
        select(Contact.id.label("contact_id"), (func.row_number().over(order_by=Contact.id) - 1).label("n"))
        .where(*eligible)
        .subquery()
    )
    senders = {f"{c.value}_sender_id": _assigned(numbered.c.n, rotation) for c, rotation in rotations.items()}
    session.execute(
        insert(Enrollment).from_select(
            ["campaign_id", "contact_id", "status", "enrolled_at", *senders],
            select(
                literal(campaign.id),
                numbered.c.contact_id,
                literal("active"),
                literal(now, UTCDateTime()),
                *senders.values(),
            ),
        )
    )
    refresh_statistics(session, Enrollment.__tablename__)
    listed = members.subquery()
    distinct = session.scalar(select(func.count(func.distinct(listed.c.contact_id)))) or 0
    counts.duplicates = counts.candidates - distinct
    counts.enrolled = session.scalar(select(func.count()).where(Enrollment.campaign_id == campaign.id)) or 0
    campaign.enrolled_at = now
    return counts


def _assigned(position: ColumnElement[int], rotation: list[int]) -> ColumnElement[int | None]:
    """The sender at a contact's position in the rotation cycle, in SQL (set-based)."""
    if not rotation:
        return literal(None, Integer())
    if len(rotation) == 1:
        return literal(rotation[0], Integer())
    return case(dict(enumerate(rotation)), value=position % len(rotation))


def _count(session: Session, *conditions: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(Contact).where(*conditions)) or 0


def _rotation(session: Session, campaign_id: int, channel: Channel) -> list[int]:
    """A cycle of sender ids in which each sender appears in proportion to its daily limit."""
    pool = session.execute(
        select(Sender.id, Sender.daily_limit)
        .join(CampaignSender, CampaignSender.sender_id == Sender.id)
        .where(CampaignSender.campaign_id == campaign_id, Sender.channel == channel.value, Sender.status == "active")
        .order_by(Sender.id)
    ).all()
    if not pool:
        return []
    divisor = 0
    for _, limit in pool:
        divisor = gcd(divisor, limit)
    weights = {sender: max(1, limit // divisor) for sender, limit in pool}
    while sum(weights.values()) > 1000:
        weights = {sender: max(1, weight // 2) for sender, weight in weights.items()}
    return _smooth_round_robin(weights)


def _smooth_round_robin(weights: dict[int, int]) -> list[int]:
    """Interleave senders by weight (nginx's smooth weighted round robin)."""
    total = sum(weights.values())
    current = dict.fromkeys(weights, 0)
    order = []
    for _ in range(total):
        for sender, weight in weights.items():
            current[sender] += weight
        chosen = max(current, key=lambda sender: (current[sender], -sender))
        current[chosen] -= total
        order.append(chosen)
    return order


def schedule_steps(session: Session, campaign: Campaign, start_at: datetime) -> list[StepPlan]:
    """Each step's global start S_k = start + group day + cumulative wait, in calendar days
    of the campaign's time zone, stored on the step rows."""
    tz = zone(campaign.timezone)
    steps = session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)).all()
    cumulative = Span()
    plans = []
    for step in steps:
        cumulative = cumulative + Span(step.wait_days, step.wait_seconds)
        if step.start_at is None:
            step.start_at = add_span(start_at, Span(step.day) + cumulative, tz)
        plans.append(
            StepPlan(
                step_id=step.id,
                position=step.position,
                channel=Channel(step.channel),
                start_at=step.start_at,
                wait_seconds=Span(step.wait_days, step.wait_seconds).approx_seconds,
            )
        )
    return plans


def prepare_campaign(
    session: Session, campaign_id: int, now: datetime, start_at: datetime, version: int
) -> tuple[EnrollmentCounts, list[StepPlan]]:
    """Launch: the campaign goes ACTIVE (unless a later decision is already recorded), its
    contacts are enrolled and each step's start is fixed and labelled in the campaign's
    time zone. LookupError for a campaign that does not exist."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(f"campaign {campaign_id} does not exist")
    project_status(session, campaign.id, CampaignStatus.ACTIVE, version, now)
    if campaign.launched_at is None:
        campaign.launched_at = now
    counts = enroll(session, campaign, now)
    steps = [
        plan.model_copy(update={"start_label": local_label(plan.start_at, campaign.timezone)})
        for plan in schedule_steps(session, campaign, start_at)
    ]
    return counts, steps
