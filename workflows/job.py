"""JobWorkflow: one job of a queue (DESIGN J1), `job-<queue>-<job id>`.

It runs the job's attempts as one activity with the queue's retry policy (2 s doubling,
capped at 5 minutes, like the seeds' BullMQ backoff), on the queue's own task queue, and
closes the job as failed (retries used up, or refused for good) or cancelled. The input
and the history hold the job's row id, never its data or result.

The job workflows run outside the SDK's sandbox (decision 0027): a job's workflow lives for
one job, and building a sandbox for each run cost more worker CPU than the job itself. They
stay deterministic by construction, as the step workflow does: time only through
`workflow.now()`, no randomness, no I/O, imports of schemas and names only.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.jobs import JobActivities
    from domain.job_backoff import BACKOFF_FIRST, BACKOFF_MOST
    from runtime.names import (
        BULK_JOB_WORKFLOW,
        JOB_QUEUE,
        JOB_STATUS,
        JOB_WORKFLOW,
        REPEAT_JOB_WORKFLOW,
        job_queue,
        job_workflow_id,
    )
    from schemas.jobs import (
        AddRepeatJobInput,
        BulkJobInput,
        BulkOutcome,
        ClaimItemsInput,
        FailItemInput,
        FinishBulkInput,
        FinishJobInput,
        JobInput,
        JobOutcome,
        JobStatus,
        RepeatJobInput,
        RunItemInput,
        RunItemsInput,
        RunJobInput,
    )
    from workflows.scheduled import scheduled_start

# A batch heartbeats after each item, and an item takes at most the queue's timeout: a
# worker that died is noticed this long after the item it was running would have timed out.
BATCH_HEARTBEAT_MARGIN = 10
FINISH_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=30)


@workflow.defn(name=JOB_WORKFLOW, sandboxed=False)
class JobWorkflow:
    @workflow.run
    async def run(self, request: JobInput) -> JobOutcome:
        if workflow.info().typed_search_attributes.get(JOB_STATUS) != JobStatus.ACTIVE.value:
            self._status(JobStatus.ACTIVE)  # a delayed job's time has come
        try:
            outcome = await workflow.execute_activity_method(
                JobActivities.run_job,
                RunJobInput(job_id=request.job_id, queue=request.queue),
                task_queue=job_queue(request.queue, request.task_queue_prefix),
                start_to_close_timeout=timedelta(seconds=request.timeout_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=BACKOFF_FIRST,
                    backoff_coefficient=2.0,
                    maximum_interval=BACKOFF_MOST,
                    maximum_attempts=request.attempts,
                ),
                summary=f"job {request.job_id} of queue {request.queue}",
            )
        except asyncio.CancelledError:
            await self._finish(request, JobStatus.CANCELLED, "cancelled")
            raise
        except ActivityError as error:
            if is_cancelled_exception(error):
                await self._finish(request, JobStatus.CANCELLED, "cancelled")
                raise
            cause = error.cause
            error_type = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            message = str(cause) if cause else str(error)
            await self._finish(request, JobStatus.FAILED, message, error_type, error.retry_state)
            return JobOutcome(status=JobStatus.FAILED, attempts_made=request.attempts)
        self._status(outcome.status)
        return outcome

    async def _finish(
        self,
        request: JobInput,
        status: JobStatus,
        message: str,
        error_type: str | None = None,
        retry_state: object = None,
    ) -> None:
        await workflow.execute_activity_method(
            JobActivities.finish_job,
            FinishJobInput(
                job_id=request.job_id,
                queue=request.queue,
                status=status,
                error=message[:1000] if status is JobStatus.FAILED else None,
                error_type=error_type,
                retry_state=getattr(retry_state, "name", None),
                now=workflow.now(),
            ),
            task_queue=job_queue(request.queue, request.task_queue_prefix),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=FINISH_RETRY,
            summary=f"job {request.job_id}: {status.value}",
        )
        self._status(status)

    def _status(self, status: JobStatus) -> None:
        workflow.upsert_search_attributes([JOB_STATUS.value_set(status.value)])


@workflow.defn(name=REPEAT_JOB_WORKFLOW, sandboxed=False)
class RepeatJobWorkflow:
    """A schedule's run of a repeatable job: add the job (its id: the repeat's id and the
    scheduled time), then run it as any job, a child `job-<queue>-<job id>`."""

    @workflow.run
    async def run(self, request: RepeatJobInput) -> JobOutcome:
        added = await workflow.execute_activity_method(
            JobActivities.add_repeat_job,
            AddRepeatJobInput(queue=request.queue, repeat_id=request.repeat_id, scheduled_at=scheduled_start()),
            task_queue=job_queue(request.queue, request.task_queue_prefix),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=FINISH_RETRY,
            summary=f"add repeat {request.repeat_id} of queue {request.queue}",
        )
        return await workflow.execute_child_workflow(
            JobWorkflow.run,
            JobInput(
                job_id=added.job_id,
                queue=request.queue,
                attempts=added.attempts,
                timeout_seconds=added.timeout_seconds,
                task_queue_prefix=request.task_queue_prefix,
            ),
            id=job_workflow_id(request.queue, added.job_key, request.task_queue_prefix),
            task_queue=job_queue(request.queue, request.task_queue_prefix),
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(JOB_QUEUE, request.queue), SearchAttributePair(JOB_STATUS, "waiting")]
            ),
            static_summary=f"Job {added.job_key} of queue {request.queue}",
        )


@workflow.defn(name=BULK_JOB_WORKFLOW, sandboxed=False)
class BulkJobWorkflow:
    """One job over many items (DESIGN J4), walked like a campaign step: the `job_items`
    table is the cursor, a bounded window of item activities is in flight, each item has
    its own retries (and a dead letter when they run out), and the run continues as new
    before its history grows long. History holds item ids only."""

    def __init__(self) -> None:
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.done = self.failed = 0

    @workflow.run
    async def run(self, request: BulkJobInput) -> BulkOutcome:
        self.request = request
        self.done, self.failed = request.done, request.failed
        queue = job_queue(request.queue, request.task_queue_prefix)
        already_active = workflow.info().typed_search_attributes.get(JOB_STATUS) == JobStatus.ACTIVE.value
        if not (already_active and request.batch > 1):  # runs before batches upserted in every run
            workflow.upsert_search_attributes([JOB_STATUS.value_set(JobStatus.ACTIVE.value)])
        try:
            return await self._walk(request, queue)
        except asyncio.CancelledError:
            await workflow.execute_activity_method(
                JobActivities.finish_job,
                FinishJobInput(
                    job_id=request.job_id, queue=request.queue, status=JobStatus.CANCELLED, now=workflow.now()
                ),
                task_queue=queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=FINISH_RETRY,
                summary="bulk job cancelled",
            )
            workflow.upsert_search_attributes([JOB_STATUS.value_set(JobStatus.CANCELLED.value)])
            raise

    async def _walk(self, request: BulkJobInput, queue: str) -> BulkOutcome:
        claims = request.claims
        refill_at = request.window - max(1, request.window // 2)  # claim again once half the window is free
        take_over = False
        while True:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(lambda: not self.in_flight)
                carried = {"claims": claims, "done": self.done, "failed": self.failed}
                workflow.continue_as_new(request.model_copy(update=carried))
            room = request.window - len(self.in_flight)
            claims += 1
            token = f"{workflow.info().run_id}:{claims}"
            claimed = await workflow.execute_activity_method(
                JobActivities.claim_items,
                ClaimItemsInput(
                    job_id=request.job_id,
                    limit=room,
                    claim_token=token,
                    take_over=take_over,
                    now=workflow.now() if request.batch > 1 else None,
                ),
                task_queue=queue,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=FINISH_RETRY,
                summary=f"claim up to {room} items",
            )
            take_over = False
            if request.batch > 1:
                for start in range(0, len(claimed.item_ids), request.batch):
                    self._start_batch(claimed.item_ids[start : start + request.batch])
            else:  # runs started before batches: an activity per item, as their histories have it
                for item_id in claimed.item_ids:
                    self.in_flight[item_id] = asyncio.create_task(self._run_item(item_id))
            if not self.in_flight and claimed.open_items == 0:
                break
            if not claimed.item_ids:
                if claimed.next_retry_at is not None:  # items wait in the table for their retry time
                    await self._until_retry_time_or_a_batch_ends(claimed.next_retry_at)
                elif self.in_flight:  # the last items are running: nothing more to claim until they end
                    await workflow.wait_condition(lambda: not self.in_flight)
                else:  # items left active by a run that was lost: take them over after a while
                    await workflow.sleep(timedelta(seconds=request.timeout_seconds), summary="items claimed elsewhere")
                    take_over = True
                continue
            await workflow.wait_condition(
                lambda: len(self.in_flight) <= refill_at or workflow.info().is_continue_as_new_suggested()
            )
        outcome = await workflow.execute_activity_method(
            JobActivities.finish_bulk,
            FinishBulkInput(job_id=request.job_id, queue=request.queue, now=workflow.now()),
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=FINISH_RETRY,
            summary="finish the bulk job",
        )
        workflow.upsert_search_attributes([JOB_STATUS.value_set(JobStatus.COMPLETED.value)])
        workflow.set_current_details(f"{outcome.completed:,} items completed, {outcome.failed:,} failed")
        return outcome

    async def _until_retry_time_or_a_batch_ends(self, retry_at: datetime) -> None:
        """Nothing to claim now: claim again when the first waiting item's retry is due, or
        as soon as a running batch ends (it may hand items back), whichever comes first."""
        running = len(self.in_flight)
        wait = max(retry_at - workflow.now(), timedelta(seconds=1))
        if not running:
            await workflow.sleep(wait, summary="items wait for their retry")
            return
        with contextlib.suppress(TimeoutError):  # the retry time came first
            await workflow.wait_condition(lambda: len(self.in_flight) < running, timeout=wait)

    def _start_batch(self, item_ids: list[int]) -> None:
        task = asyncio.create_task(self._run_batch(item_ids))
        for item_id in item_ids:
            self.in_flight[item_id] = task

    async def _run_batch(self, item_ids: list[int]) -> None:
        """A batch's items in one activity; an item that may be retried goes back to the
        table with its retry time and is claimed again then, like any waiting item."""
        request = self.request
        try:
            result = await workflow.execute_activity_method(
                JobActivities.run_items,
                RunItemsInput(
                    job_id=request.job_id,
                    queue=request.queue,
                    item_ids=item_ids,
                    attempts=request.attempts,
                    now=workflow.now(),
                ),
                task_queue=job_queue(request.queue, request.task_queue_prefix),
                start_to_close_timeout=timedelta(seconds=request.timeout_seconds * len(item_ids) + 30),
                heartbeat_timeout=timedelta(seconds=request.timeout_seconds + BATCH_HEARTBEAT_MARGIN),
                retry_policy=FINISH_RETRY,
                summary=f"items {item_ids[0]}..{item_ids[-1]}",
            )
        except ActivityError as error:
            if is_cancelled_exception(error):
                raise
            # the batch itself kept failing (not its items: they answer for themselves):
            # each unfinished item goes on alone, where a finished one returns at once
            for item_id in item_ids:
                self.in_flight[item_id] = asyncio.create_task(self._run_item(item_id))
            return
        for item_id in item_ids:
            del self.in_flight[item_id]
        self._progress(done=result.completed + result.failed, failed=result.failed)

    async def _run_item(self, item_id: int) -> None:
        """An item in its own activity with the queue's retries: every item of a run started
        before batches, and the items of a batch that could not run at all."""
        request = self.request
        queue = job_queue(request.queue, request.task_queue_prefix)
        failed = False
        try:
            await workflow.execute_activity_method(
                JobActivities.run_item,
                RunItemInput(item_id=item_id, queue=request.queue),
                task_queue=queue,
                start_to_close_timeout=timedelta(seconds=request.timeout_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=BACKOFF_FIRST,
                    backoff_coefficient=2.0,
                    maximum_interval=BACKOFF_MOST,
                    maximum_attempts=request.attempts,
                ),
                summary=f"item {item_id}",
            )
        except ActivityError as error:
            if is_cancelled_exception(error):
                raise  # the bulk job was cancelled: the item is not a failure
            failed = True
            cause = error.cause
            await workflow.execute_activity_method(
                JobActivities.fail_item,
                FailItemInput(
                    item_id=item_id,
                    job_id=request.job_id,
                    queue=request.queue,
                    error_type=cause.type if isinstance(cause, ApplicationError) and cause.type else "ItemFailed",
                    error=(str(cause) if cause else str(error))[:1000],
                    retry_state=error.retry_state.name if error.retry_state else None,
                    now=workflow.now(),
                ),
                task_queue=queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=FINISH_RETRY,
                summary=f"item {item_id} failed",
            )
        finally:
            del self.in_flight[item_id]
        self._progress(done=1, failed=int(failed))

    def _progress(self, *, done: int, failed: int) -> None:
        """The Web UI's current details: how far the walk is."""
        self.done += done
        self.failed += failed
        total = f" of {self.request.items:,}" if self.request.items else ""
        workflow.set_current_details(f"{self.done:,}{total} items done, {self.failed:,} failed")
