"""AnalyticsWorkflow: one run of the hourly or daily analytics schedule.

It only fixes "now" from the scheduled start (DESIGN R16: a run that starts late, or a
manual `temporal schedule trigger`, computes what it was meant to) and hands the work to
one activity on its own task queue (the campaigns queue). The history is a handful of
events whatever the number of campaigns.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.analytics import AnalyticsActivities
    from schemas.analytics_io import AggregateAnalyticsInput, AggregateAnalyticsResult, AnalyticsRunInput
    from workflows.scheduled import scheduled_start

AGGREGATE_TIMEOUT = timedelta(minutes=30)
AGGREGATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)


@workflow.defn(name="AnalyticsWorkflow")
class AnalyticsWorkflow:
    @workflow.run
    async def run(self, request: AnalyticsRunInput) -> AggregateAnalyticsResult:
        now = scheduled_start()
        return await workflow.execute_activity_method(
            AnalyticsActivities.aggregate_analytics,
            AggregateAnalyticsInput(period=request.period, now=now, lookback_buckets=request.lookback_buckets),
            start_to_close_timeout=AGGREGATE_TIMEOUT,
            retry_policy=AGGREGATE_RETRY,
            summary=f"{request.period} analytics at {now:%Y-%m-%d %H:%M} UTC",
        )
