"""RetentionWorkflow: the retention schedule's run (daily), purging details past their age.

"Now" is the scheduled start time (DESIGN R16): a run that starts late after downtime, or
a repeated one, purges what it was meant to and no more.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from schemas.retention_io import RetentionCounts, RetentionPurgeInput, RetentionRunInput
    from workflows.scheduled import scheduled_start

# One set-based UPDATE per table; on a large database the first run can take a while.
PURGE_TIMEOUT = timedelta(minutes=30)
PURGE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), maximum_interval=timedelta(minutes=5))


@workflow.defn(name="RetentionWorkflow")
class RetentionWorkflow:
    @workflow.run
    async def run(self, request: RetentionRunInput) -> RetentionCounts:
        counts = await workflow.execute_activity_method(
            RetentionActivities.purge_expired,
            RetentionPurgeInput(
                now=scheduled_start(),
                dry_run=request.dry_run,
                inbound_body_days=request.inbound_body_days,
                error_payload_days=request.error_payload_days,
            ),
            start_to_close_timeout=PURGE_TIMEOUT,
            retry_policy=PURGE_RETRY,
            summary="purge expired details",
        )
        workflow.set_current_details(
            f"purged {counts.inbound_messages} inbound bodies, {counts.executions} execution errors,"
            f" {counts.dead_letters} dead-letter errors"
        )
        return counts
