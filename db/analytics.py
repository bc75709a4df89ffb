"""Analytics buckets (`campaign_step_stats`): recomputed from the details and upserted,
never incremented (DESIGN R16), so a late, repeated or concurrent run writes the same rows.

A refresh recomputes every bucket of the campaigns it is given, in one transaction: the
grouped counts of `db.analytics_measures` are upserted (`INSERT ... ON CONFLICT DO
UPDATE`, on PostgreSQL and SQLite), and buckets that no longer have anything in them (a
row re-slotted to another day) are removed. Buckets from before a campaign's earliest
remaining execution row are left alone: they are what is kept once retention has purged
the details behind them, so a recompute after a purge cannot erase history. The periodic
run refreshes the campaigns touched since a few buckets back (active or paused ones,
those that finished, changed rows, new inbound mail or stops of their contacts);
`outbound campaign report` refreshes one campaign.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, or_, select, union
from sqlalchemy.orm import Session

from db.analytics_measures import Measure, execution_measures, response_measures
from db.dialect import dialect_insert
from db.models import Campaign, CampaignStepStats, Contact, InboundMessage, StepExecution
from schemas.analytics_io import Period
from schemas.enums import CampaignStatus

PERIODS: tuple[Period, ...] = ("hour", "day")
COUNTERS = ("scheduled", "sent", "skipped", "failed", "cancelled", "replied", "bounced", "unsubscribed")
CHUNK = 200  # campaigns per set of grouped queries: keeps IN lists and result sets small
_TABLE = cast(Table, CampaignStepStats.__table__)
_KEY = ("campaign_id", "step_id", "period", "bucket_start")
BucketKey = tuple[int, int, datetime]


@dataclass(frozen=True, slots=True)
class RefreshCounts:
    campaigns: int = 0
    written: int = 0
    removed: int = 0

    def __add__(self, other: RefreshCounts) -> RefreshCounts:
        return RefreshCounts(
            self.campaigns + other.campaigns, self.written + other.written, self.removed + other.removed
        )


def bucket_floor(moment: datetime, period: Period) -> datetime:
    """The start of the UTC hour or day `moment` falls in."""
    start = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if period == "day" else start


def period_length(period: Period) -> timedelta:
    return timedelta(hours=1) if period == "hour" else timedelta(days=1)


def aggregate(session: Session, period: Period, now: datetime, lookback_buckets: int) -> tuple[datetime, RefreshCounts]:
    """The periodic run: refresh the campaigns touched since `lookback_buckets` buckets
    before the one `now` is in. Returns that start and what was written."""
    since = bucket_floor(now, period) - lookback_buckets * period_length(period)
    return since, refresh_campaigns(session, touched_campaigns(session, since), period, now)


def refresh_campaign(session: Session, campaign_id: int, computed_at: datetime) -> RefreshCounts:
    """Both periods of one campaign (the report's refresh)."""
    counts = RefreshCounts()
    for period in PERIODS:
        counts += refresh_campaigns(session, [campaign_id], period, computed_at)
    return RefreshCounts(1 if counts.campaigns else 0, counts.written, counts.removed)


def touched_campaigns(session: Session, since: datetime) -> list[int]:
    """Campaigns whose buckets may have changed since `since`."""
    x = StepExecution
    responders = or_(
        x.contact_id.in_(
            select(InboundMessage.contact_id).where(
                InboundMessage.created_at >= since, InboundMessage.contact_id.is_not(None)
            )
        ),
        x.contact_id.in_(select(Contact.id).where(Contact.stopped_at >= since)),
    )
    live = (CampaignStatus.ACTIVE.value, CampaignStatus.PAUSED.value)
    query = union(
        select(Campaign.id).where(or_(Campaign.status.in_(live), Campaign.finished_at >= since)),
        select(x.campaign_id).where(or_(x.updated_at >= since, x.sent_at >= since)),
        select(x.campaign_id).where(responders),
    )
    return sorted(session.scalars(query))


def refresh_campaigns(
    session: Session, campaign_ids: Iterable[int], period: Period, computed_at: datetime
) -> RefreshCounts:
    """Recompute and upsert every bucket of `period` of these campaigns."""
    ids = sorted(set(campaign_ids))
    counts = RefreshCounts()
    for start in range(0, len(ids), CHUNK):
        counts += _refresh_chunk(session, ids[start : start + CHUNK], period, computed_at)
    return counts


def _refresh_chunk(session: Session, ids: Sequence[int], period: Period, computed_at: datetime) -> RefreshCounts:
    kept_before = _earliest_details(session, ids, period)
    ids = sorted(kept_before)  # a campaign without execution rows keeps its buckets as they are
    if not ids:
        return RefreshCounts()
    measures = execution_measures(session, period, ids) + response_measures(session, period, ids)
    fresh = _rows(measures, period, computed_at)
    if fresh:
        statement = dialect_insert(session, _TABLE)
        columns = (*COUNTERS, "skipped_by_reason", "computed_at")
        session.execute(
            statement.on_conflict_do_update(
                index_elements=list(_KEY), set_={name: statement.excluded[name] for name in columns}
            ),
            [fresh[key] for key in sorted(fresh)],  # one lock order for concurrent refreshes
        )
    stale = [
        {"k_campaign": campaign, "k_step": step, "k_bucket": start}
        for campaign, step, start in _stored_keys(session, ids, period)
        if (campaign, step, start) not in fresh and start >= kept_before[campaign]
    ]
    if stale:
        table = _TABLE.c
        session.connection().execute(
            delete(_TABLE).where(
                table.campaign_id == bindparam("k_campaign"),
                table.step_id == bindparam("k_step"),
                table.period == period,
                table.bucket_start == bindparam("k_bucket"),
            ),
            stale,
        )
    return RefreshCounts(len(ids), len(fresh), len(stale))


def _earliest_details(session: Session, ids: Sequence[int], period: Period) -> dict[int, datetime]:
    """Per campaign, the first bucket its remaining execution rows reach back to."""
    x = StepExecution
    rows = session.execute(
        select(x.campaign_id, func.min(x.scheduled_for), func.min(x.sent_at), func.min(x.updated_at))
        .where(x.campaign_id.in_(list(ids)))
        .group_by(x.campaign_id)
    )
    earliest: dict[int, datetime] = {}
    for campaign, *moments in rows:
        known = [moment for moment in moments if moment is not None]
        if known:
            earliest[campaign] = bucket_floor(min(known), period)
    return earliest


def _stored_keys(session: Session, ids: Sequence[int], period: Period) -> list[BucketKey]:
    s = CampaignStepStats
    rows = session.execute(
        select(s.campaign_id, s.step_id, s.bucket_start).where(s.campaign_id.in_(list(ids)), s.period == period)
    )
    return [(campaign, step, start) for campaign, step, start in rows]


def _rows(measures: Iterable[Measure], period: Period, computed_at: datetime) -> dict[BucketKey, dict[str, Any]]:
    rows: dict[BucketKey, dict[str, Any]] = {}
    for found in measures:
        key = (found.campaign_id, found.step_id, found.bucket_start)
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "campaign_id": found.campaign_id,
                "step_id": found.step_id,
                "period": period,
                "bucket_start": found.bucket_start,
                **dict.fromkeys(COUNTERS, 0),
                "skipped_by_reason": {},
                "computed_at": computed_at,
            }
        row[found.measure] += found.count
        if found.reason is not None:
            reasons = row["skipped_by_reason"]
            reasons[found.reason] = reasons.get(found.reason, 0) + found.count
    for row in rows.values():
        row["skipped_by_reason"] = dict(sorted(row["skipped_by_reason"].items()))
    return rows
