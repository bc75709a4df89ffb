"""DeadLetterRetryWorkflow: `outbound dlq retry ID`, the same guarded send in its own
workflow (DESIGN R14).

It reopens the FAILED execution (leased to itself, so a running step workflow leaves it
alone), then runs the ordinary send activity on the channel's queue with the step
workflow's retry policy: the gate re-checks the campaign and the contact, so a contact
who replied since is SKIPPED, not sent. When the send is held, deferred or re-slotted the
row goes back to SCHEDULED; the retry sleeps until it is due and claims it again, since
the campaign's step workflow may already be done. Whatever happens it settles the letter:
`resolved` when the execution is closed, `open` with the new error otherwise.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dead_letters import DeadLetterActivities
    from activities.sending import SendActivities
    from runtime.names import channel_queue
    from schemas.activity_io import SendInput, SendResult
    from schemas.dead_letter_io import (
        BeginRetryInput,
        BeginRetryResult,
        ClaimRetryInput,
        DeadLetterRetryInput,
        DeadLetterRetryResult,
        FinishRetryInput,
    )
    from schemas.enums import SendOutcome
    from workflows.common import ACTIVITY_TIMEOUT

DONE = (SendOutcome.SENT, SendOutcome.SKIPPED, SendOutcome.ALREADY_DONE)
HOLD_BACKOFF_START = 30.0  # a paused campaign: look again after 30 s, doubling ...
HOLD_BACKOFF_MAX = 3600.0  # ... up to an hour, so a long pause costs few events


@workflow.defn(name="DeadLetterRetryWorkflow")
class DeadLetterRetryWorkflow:
    @workflow.run
    async def run(self, request: DeadLetterRetryInput) -> DeadLetterRetryResult:
        begun = await workflow.execute_activity_method(
            DeadLetterActivities.begin_dead_letter_retry,
            BeginRetryInput(
                dead_letter_id=request.dead_letter_id, now=workflow.now(), lease_seconds=request.tuning.lease_seconds
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        last: SendResult | None = None
        failure: tuple[str, str] | None = None
        holds = 0
        rounds = 0
        ours = True
        settled = False  # the send returned for good, failed, or someone else closed the row
        while rounds < request.max_rounds:
            rounds += 1
            if ours:
                workflow.set_current_details(f"sending execution {begun.execution_id} (round {rounds})")
                try:
                    last = await self._send(request, begun)
                except ActivityError as error:
                    failure = _describe(error)
                    settled = True
                    break
                if last.outcome in DONE:
                    settled = True
                    break
                holds = holds + 1 if last.outcome is SendOutcome.HELD else 0
                ours = False
                continue
            claim = await workflow.execute_activity_method(
                DeadLetterActivities.claim_dead_letter_retry,
                ClaimRetryInput(
                    execution_id=begun.execution_id, now=workflow.now(), lease_seconds=request.tuning.lease_seconds
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
            )
            if claim.claimed:
                ours = True
                continue
            if claim.status.terminal:
                settled = True  # someone else (the step workflow) closed it
                break
            await self._wait(claim.wait_until, holds)
        gave_up = not settled
        if gave_up:
            failure = ("RetryGaveUp", f"execution still waiting ({last.outcome.value if last else 'unknown'})")
        result = await workflow.execute_activity_method(
            DeadLetterActivities.finish_dead_letter_retry,
            FinishRetryInput(
                dead_letter_id=request.dead_letter_id,
                now=workflow.now(),
                error_type=failure[0] if failure else None,
                message=failure[1] if failure else None,
                gave_up=gave_up,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        return result.model_copy(
            update={
                "outcome": last.outcome if last else None,
                "detail": result.detail or (last.detail if last else None),
                "rounds": rounds,
            }
        )

    async def _send(self, request: DeadLetterRetryInput, begun: BeginRetryResult) -> SendResult:
        return await workflow.execute_activity_method(
            SendActivities.send_message,
            SendInput(execution_id=begun.execution_id, now=workflow.now(), dead_letter_retry=True),
            task_queue=channel_queue(begun.channel, request.task_queue_prefix),
            start_to_close_timeout=timedelta(seconds=request.tuning.send_timeout_seconds),
            retry_policy=request.tuning.send_retry_policy(),
            summary=f"retry {begun.channel.value} execution {begun.execution_id}",
        )

    async def _wait(self, until: datetime | None, holds: int) -> None:
        """Until the row is due again; a held row (paused campaign) backs off."""
        seconds = (until - workflow.now()).total_seconds() if until is not None else 0.0
        if holds:
            seconds = max(seconds, min(HOLD_BACKOFF_START * 2 ** (holds - 1), HOLD_BACKOFF_MAX))
        await workflow.sleep(max(seconds, 1.0), summary="until the retried execution is due")


def _describe(error: ActivityError) -> tuple[str, str]:
    """The error type and message of a failed send, as the step workflow records them."""
    cause = error.cause
    error_type = cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__
    message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
    return error_type or "Error", (message or "")[:2000]
