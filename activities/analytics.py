"""The analytics activity: recompute and upsert the buckets of the campaigns touched lately."""

from __future__ import annotations

from temporalio import activity

from db.analytics import aggregate
from db.engine import SessionFactory, unit_of_work
from schemas.analytics_io import AggregateAnalyticsInput, AggregateAnalyticsResult


class AnalyticsActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def aggregate_analytics(self, request: AggregateAnalyticsInput) -> AggregateAnalyticsResult:
        """One transaction: a retried attempt recomputes from scratch, so it can only write
        the same rows again (grouped queries per batch of campaigns, never per contact)."""
        with unit_of_work(self.sessions) as session:
            since, counts = aggregate(session, request.period, request.now, request.lookback_buckets)
        activity.logger.info(
            "analytics %s: %s campaigns, %s buckets written, %s removed",
            request.period,
            counts.campaigns,
            counts.written,
            counts.removed,
        )
        return AggregateAnalyticsResult(
            period=request.period,
            since=since,
            campaigns=counts.campaigns,
            buckets_written=counts.written,
            buckets_removed=counts.removed,
        )
