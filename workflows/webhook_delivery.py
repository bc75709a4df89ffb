"""WebhookDeliveryWorkflow: one endpoint's deliveries, for as long as it is enabled
(DESIGN W3), `webhooks-<endpoint id>`.

It claims the endpoint's due deliveries (the events table, through the endpoint's cursor,
is what it walks) and posts them in order, one batch in flight, so the app hears events in
the order they happened; a delivery that fails waits in the table for its next retry time
and the others go on. Between batches a claim waits up to `poll_seconds` for new events
(or, with `poll_seconds` 0, the workflow checks on timers: at the next retry time, or
every `idle_seconds`; for tests on the time-skipping server, where a waiting activity
would stop time). It
continues as new before its history grows long, and ends when the endpoint is disabled.
History holds delivery ids and counts, never a body.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookActivities
    from runtime.names import WEBHOOK_DELIVERY_WORKFLOW, WEBHOOK_WAKE_SIGNAL, webhook_queue
    from schemas.webhooks_io import ClaimWebhooksInput, DeliverWebhooksInput, WebhookDeliveryInput

LONG_HISTORY = 3000
# The activities' own failures (the database, a crash): retried for as long as it takes.
PATIENT = RetryPolicy(maximum_interval=timedelta(minutes=1))


@workflow.defn(name=WEBHOOK_DELIVERY_WORKFLOW, sandboxed=False)
class WebhookDeliveryWorkflow:
    """Unsandboxed like the other long walks (decisions 0005, 0027): time only through
    `workflow.now()`, no I/O, imports of schemas and names only."""

    def __init__(self) -> None:
        self.woken = False

    @workflow.signal(name=WEBHOOK_WAKE_SIGNAL)
    def wake(self) -> None:
        """Look again now (a replay, a disable): ends a wait on a timer early."""
        self.woken = True

    @workflow.run
    async def run(self, request: WebhookDeliveryInput) -> None:
        queue = webhook_queue(request.task_queue_prefix)
        claims = request.claims
        workflow.set_current_details(f"Delivering events to endpoint {request.endpoint_id}")
        while True:
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > LONG_HISTORY:
                workflow.continue_as_new(request.model_copy(update={"claims": claims}))
            claims += 1
            claimed = await workflow.execute_activity_method(
                WebhookActivities.claim_webhooks,
                ClaimWebhooksInput(
                    endpoint_id=request.endpoint_id,
                    limit=request.batch,
                    claim_token=f"{info.run_id}:{claims}",
                    now=workflow.now(),
                    wait_seconds=request.poll_seconds,
                ),
                task_queue=queue,
                start_to_close_timeout=timedelta(seconds=request.poll_seconds + 60),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=PATIENT,
                summary="claim due deliveries",
            )
            if not claimed.enabled:
                workflow.set_current_details(f"Endpoint {request.endpoint_id} is disabled")
                return
            if claimed.delivery_ids:
                delivered = await workflow.execute_activity_method(
                    WebhookActivities.deliver_webhooks,
                    DeliverWebhooksInput(
                        endpoint_id=request.endpoint_id,
                        delivery_ids=claimed.delivery_ids,
                        claim_token=f"{info.run_id}:{claims}",
                        now=workflow.now(),
                    ),
                    task_queue=queue,
                    start_to_close_timeout=timedelta(seconds=request.timeout_seconds * len(claimed.delivery_ids) + 60),
                    heartbeat_timeout=timedelta(seconds=request.timeout_seconds + 15),
                    retry_policy=PATIENT,
                    summary=f"deliver {len(claimed.delivery_ids)} events",
                )
                if delivered.disabled:
                    workflow.set_current_details(f"Endpoint {request.endpoint_id} was disabled")
                    return
                continue
            if request.poll_seconds == 0:  # checking on timers: until the next retry, or a while
                wait = timedelta(seconds=request.idle_seconds)
                if claimed.next_due_at is not None:
                    wait = max(claimed.next_due_at - workflow.now(), timedelta(seconds=0))
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self.woken,
                        timeout=max(wait, timedelta(milliseconds=100)),
                        timeout_summary="nothing due",
                    )
                self.woken = False
