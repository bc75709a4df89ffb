"""JobWorkflow: one job of a queue (DESIGN J1), `job-<queue>-<job id>`.

It runs the job's attempts as one activity with the queue's retry policy (2 s doubling,
capped at 5 minutes, like the seeds' BullMQ backoff), on the queue's own task queue, and
closes the job as failed (retries used up, or refused for good) or cancelled. The input
and the history hold the job's row id, never its data or result.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.jobs import JobActivities
    from runtime.names import (
        JOB_QUEUE,
        JOB_STATUS,
        JOB_WORKFLOW,
        REPEAT_JOB_WORKFLOW,
        job_queue,
        job_workflow_id,
    )
    from schemas.jobs import (
        AddRepeatJobInput,
        FinishJobInput,
        JobInput,
        JobOutcome,
        JobStatus,
        RepeatJobInput,
        RunJobInput,
    )
    from workflows.scheduled import scheduled_start

BACKOFF_FIRST = timedelta(seconds=2)
BACKOFF_MOST = timedelta(minutes=5)
FINISH_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=30)


@workflow.defn(name=JOB_WORKFLOW)
class JobWorkflow:
    @workflow.run
    async def run(self, request: JobInput) -> JobOutcome:
        self._status(JobStatus.ACTIVE)
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


@workflow.defn(name=REPEAT_JOB_WORKFLOW)
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
