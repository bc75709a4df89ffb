"""Enrollment: who a campaign reaches, decided once, set-based, at launch.

Contacts are deduplicated across lead groups, suppressed / stopped / busy contacts are
left out, and each enrolled contact gets one sender per channel for all its steps
(follow-ups must come from the same mailbox to stay in the same thread).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from math import gcd

from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    String,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.selectable import AliasedReturnsRows

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
from schemas.campaign_file import CampaignFile, VerificationRequirement
from schemas.enums import CampaignStatus, Channel, EnrollmentStatus, SuppressionKind
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
    rotations = {channel: _rotation(session, campaign.id, channel) for channel in Channel}
    listed = members.subquery()
    candidates, distinct = session.execute(
        select(func.count(), func.count(func.distinct(listed.c.contact_id))).select_from(listed)
    ).one()
    if session.get_bind().dialect.name == "postgresql":
        # Every member is read, so one hash join over the contacts with room to hash them:
        # the planner, which cannot know how many members a campaign's groups hold, chose
        # a million index look-ups (5 s of 14 at a million contacts).
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL enable_nestloop = off"))
        groups = select(CampaignLeadGroup.group_id).where(CampaignLeadGroup.campaign_id == campaign.id)
        member = exists().where(LeadGroupMember.contact_id == Contact.id, LeadGroupMember.group_id.in_(groups))
        counts = _enroll_in_one_pass(session, campaign, now, member, skip_busy, rotations)
    else:
        counts = _enroll_counting_apart(session, campaign, now, in_groups, skip_busy, rotations)
    counts.candidates, counts.duplicates = candidates, candidates - distinct
    campaign.enrolled_at = now
    return counts


def _enroll_in_one_pass(
    session: Session,
    campaign: Campaign,
    now: datetime,
    in_groups: ColumnElement[bool],
    skip_busy: bool,
    rotations: dict[Channel, list[int]],
) -> EnrollmentCounts:
    """PostgreSQL: each contact of the groups is judged once (suppressed, stopped, busy
    elsewhere), the eligible ones are numbered for the sender rotation and inserted, and
    the counts come from the same pass (data-modifying CTE): at a million contacts,
    judging them again for every count cost more than the insert."""
    busy = _active_elsewhere_clause(campaign.id) if skip_busy else literal(False)
    judged = (
        select(
            Contact.id.label("contact_id"),
            suppressed_clause().label("suppressed"),
            Contact.stopped_reason.is_not(None).label("stopped"),
            busy.label("busy"),
            _enrollment_status(campaign, now).label("status"),
        )
        .where(in_groups)
        .cte("judged")
    )
    numbered = (
        select(
            judged.c.contact_id,
            judged.c.status,
            (func.row_number().over(order_by=judged.c.contact_id) - 1).label("n"),
        )
        .where(~judged.c.suppressed, ~judged.c.stopped, ~judged.c.busy)
        .cte("numbered")
    )
    inserted = _insert_numbered(campaign, now, numbered, rotations).returning(Enrollment.status).cte("inserted")
    row = session.execute(
        select(
            func.count().filter(judged.c.suppressed),
            func.count().filter(judged.c.stopped),
            func.count().filter(judged.c.busy),
            select(func.count()).select_from(inserted).scalar_subquery(),
            select(func.count())
            .select_from(inserted)
            .where(inserted.c.status == EnrollmentStatus.UNVERIFIED)
            .scalar_subquery(),
        ).select_from(judged)
    ).one()
    refresh_statistics(session, Enrollment.__tablename__)
    suppressed, stopped, active_elsewhere, enrolled, unverified = (int(value or 0) for value in row)
    return EnrollmentCounts(
        suppressed=suppressed,
        stopped=stopped,
        active_elsewhere=active_elsewhere,
        enrolled=enrolled,
        unverified=unverified,
    )


def _enroll_counting_apart(
    session: Session,
    campaign: Campaign,
    now: datetime,
    in_groups: ColumnElement[bool],
    skip_busy: bool,
    rotations: dict[Channel, list[int]],
) -> EnrollmentCounts:
    """SQLite (no INSERT in a CTE): the counts, then the insert, each its own statement."""
    counts = EnrollmentCounts(
        suppressed=_count(session, in_groups, suppressed_clause()),
        stopped=_count(session, in_groups, Contact.stopped_reason.is_not(None)),
        active_elsewhere=_count(session, in_groups, _active_elsewhere_clause(campaign.id)) if skip_busy else 0,
    )
    eligible = [in_groups, ~suppressed_clause(), Contact.stopped_reason.is_(None)]
    if skip_busy:
        eligible.append(~_active_elsewhere_clause(campaign.id))
    numbered = (
        select(
            Contact.id.label("contact_id"),
            (func.row_number().over(order_by=Contact.id) - 1).label("n"),
            _enrollment_status(campaign, now).label("status"),
        )
        .where(*eligible)
        .subquery()
    )
    session.execute(_insert_numbered(campaign, now, numbered, rotations))
    counts.enrolled = session.scalar(select(func.count()).where(Enrollment.campaign_id == campaign.id)) or 0
    counts.unverified = (
        session.scalar(
            select(func.count()).where(
                Enrollment.campaign_id == campaign.id, Enrollment.status == EnrollmentStatus.UNVERIFIED
            )
        )
        or 0
    )
    return counts


def _insert_numbered(
    campaign: Campaign, now: datetime, numbered: AliasedReturnsRows, rotations: dict[Channel, list[int]]
) -> Insert:
    """The enrollments of `numbered` (contact_id, status, n): each contact gets the sender
    at its position `n` in each channel's rotation."""
    senders = {f"{c.value}_sender_id": _assigned(numbered.c.n, rotation) for c, rotation in rotations.items()}
    return insert(Enrollment).from_select(
        ["campaign_id", "contact_id", "status", "enrolled_at", *senders],
        select(
            literal(campaign.id),
            numbered.c.contact_id,
            numbered.c.status,
            literal(now, UTCDateTime()),
            *senders.values(),
        ),
    )


def _enrollment_status(campaign: Campaign, now: datetime) -> ColumnElement[str]:
    """`unverified` for a contact whose verdict is recent enough to trust and fails the
    campaign's `verification:`; `active` otherwise (those without a recent verdict are
    verified before the first step, `db.verification.apply_requirement`)."""
    requirement = CampaignFile.model_validate(campaign.definition).verification
    if requirement is None:
        return literal(EnrollmentStatus.ACTIVE, String())
    recent = Contact.email_checked_at >= literal(
        now - timedelta(seconds=requirement.max_age.approx_seconds), UTCDateTime()
    )
    return case(
        (and_(recent, failing_verdict(requirement)), literal(EnrollmentStatus.UNVERIFIED, String())),
        else_=literal(EnrollmentStatus.ACTIVE, String()),
    )


def failing_verdict(requirement: VerificationRequirement) -> ColumnElement[bool]:
    """The contact's stored verdict does not meet `requirement` (SQL)."""
    if requirement.require == "deliverable":
        return or_(Contact.email_status.is_(None), Contact.email_status != "deliverable")
    return Contact.email_status == "undeliverable"


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
