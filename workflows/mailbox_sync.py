"""MailboxSyncWorkflow: keeps one Gmail mailbox's inbound mail flowing into Outbound.

It runs for as long as the mailbox is connected: sync, sleep, sync again, continuing as
new every few hundred syncs so its history stays short. A revoked grant ends it (the
mailbox is disabled; reconnecting it with `senders add-gmail` starts it again).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.inbound import InboundActivities
    from runtime.names import MAILBOX_SYNC_WORKFLOW, inbound_queue
    from schemas.inbound_io import MailboxState, MailboxSyncInput, SyncMailboxInput, SyncMailboxResult

SYNC_TIMEOUT = timedelta(minutes=10)
SYNC_HEARTBEAT = timedelta(minutes=2)
SYNC_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5))


@workflow.defn(name=MAILBOX_SYNC_WORKFLOW)
class MailboxSyncWorkflow:
    @workflow.run
    async def run(self, request: MailboxSyncInput) -> SyncMailboxResult:
        for _ in range(request.syncs_before_continue_as_new):
            result = await workflow.execute_activity_method(
                InboundActivities.sync_mailbox,
                SyncMailboxInput(sender_id=request.sender_id, now=workflow.now()),
                task_queue=inbound_queue(request.task_queue_prefix),
                start_to_close_timeout=SYNC_TIMEOUT,
                heartbeat_timeout=SYNC_HEARTBEAT,
                retry_policy=SYNC_RETRY,
                summary=f"sync mailbox {request.sender_id}",
            )
            if result.state is not MailboxState.SYNCED:
                workflow.set_current_details(f"stopped: mailbox {result.state.value} ({result.detail or ''})")
                return result
            workflow.set_current_details(
                f"last sync {workflow.now():%Y-%m-%d %H:%M:%S} UTC: {result.stored} new"
                + (f" {result.by_kind}" if result.by_kind else "")
                + (" (full resync)" if result.full_resync else "")
            )
            if workflow.info().is_continue_as_new_suggested():
                break
            await workflow.sleep(request.interval_seconds, summary="until the next mailbox sync")
        workflow.continue_as_new(request)
