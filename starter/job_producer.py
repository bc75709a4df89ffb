"""Enqueue, cancel and retry jobs (DESIGN J1): the row first, then the workflow.

The row's unique (queue, job id) makes enqueue idempotent; the workflow id
`job-<queue>-<job id>` makes starting it idempotent too (an existing run is used), so a
producer that crashed between the two, or two producers racing with one id, still end
with one job and one workflow. The CLI and the HTTP API both go through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from db.engine import SessionFactory, unit_of_work
from db.job_dead_letters import close_job_letters
from db.job_items import item_counts, write_bulk_job
from db.jobs import NewJob, enqueue, find_job, reset_for_retry, view
from db.models import Job
from runtime.names import BULK_JOB_WORKFLOW, JOB_QUEUE, JOB_STATUS, JOB_WORKFLOW, job_queue, job_workflow_id
from schemas.dead_letter_io import DeadLetterStatus
from schemas.jobs import BulkJobInput, BulkOutcome, JobInput, JobOutcome, JobStatus, JobView
from schemas.jobs_file import JobsFile, QueueSpec

JOB_KEY_LIMIT = 200
# Items per activity of a bulk job: a tenth of the Temporal work per item, while one
# item's retries still run on their own.
DEFAULT_BATCH = 10


class JobError(Exception):
    """A job request that cannot be done as asked: `invalid` (a bad option or queue),
    `not_found` (no such job) or `conflict` (the job's state forbids it)."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Enqueued:
    job: JobView
    created: bool  # False: the job id was taken; `job` is the existing job


class JobProducer:
    def __init__(self, client: Client, sessions: SessionFactory, jobs: JobsFile, prefix: str = "") -> None:
        self.client = client
        self.sessions = sessions
        self.jobs = jobs
        self.prefix = prefix

    async def add(
        self,
        queue: str,
        data: dict[str, Any],
        *,
        name: str | None = None,
        job_key: str | None = None,
        delay_seconds: float = 0.0,
        priority: int | None = None,
        attempts: int | None = None,
    ) -> Enqueued:
        spec = self._queue(queue)
        key = _checked_key(job_key) if job_key is not None else uuid.uuid4().hex
        if priority is not None and not 1 <= priority <= 5:
            raise JobError(f"priority must be 1 (first) to 5 (last), got {priority}")
        if attempts is not None and not 1 <= attempts <= 100:
            raise JobError(f"attempts must be 1 to 100, got {attempts}")
        if delay_seconds < 0:
            raise JobError("delay cannot be negative")
        new = NewJob(
            queue=queue,
            job_key=key,
            data=data,
            priority=priority or spec.priority,
            attempts=attempts or spec.attempts,
            name=name,
            delay_seconds=delay_seconds,
        )
        with unit_of_work(self.sessions) as session:
            job_id, created = enqueue(session, new, datetime.now(UTC))
            row = session.get_one(Job, job_id)
            job = view(row)
        if not job.status.finished:
            await self._start(job, spec, delay_seconds if created else _remaining_delay(job))
        return Enqueued(job, created)

    async def add_bulk(
        self,
        queue: str,
        items: Iterable[dict[str, Any]],
        *,
        name: str | None = None,
        job_key: str | None = None,
        window: int = 100,
        batch: int | None = None,
    ) -> Enqueued:
        """One job over many items (DESIGN J4): the items are written with the job, in one
        transaction, and walked by `BulkJobWorkflow`; the same job id twice is one job.
        `items` may be any iterable (a file read line by line): they are written in chunks,
        never all held at once. `window` items are in flight at once, `batch` of them to an
        activity (10 unless the window is smaller)."""
        spec = self._queue(queue)
        batch = min(DEFAULT_BATCH, window) if batch is None else batch
        if not 1 <= batch <= min(window, 100):
            raise JobError(f"batch must be 1 to {min(window, 100)} (at most the window), got {batch}")
        key = _checked_key(job_key) if job_key is not None else uuid.uuid4().hex
        new = NewJob(queue, key, {}, spec.priority, spec.attempts, name=name)
        try:
            with unit_of_work(self.sessions) as session:
                job, created = write_bulk_job(session, new, items, datetime.now(UTC))
        except ValueError as error:  # no items: the job's row goes with the transaction
            raise JobError(str(error)) from None
        if not job.status.finished:
            await self.client.start_workflow(
                BULK_JOB_WORKFLOW,
                BulkJobInput(
                    job_id=job.id,
                    queue=queue,
                    attempts=spec.attempts,
                    timeout_seconds=spec.timeout_seconds,
                    window=window,
                    batch=batch,
                    task_queue_prefix=self.prefix,
                    items=job.items or 0,
                ),
                **self._placement(job, WorkflowIDReusePolicy.REJECT_DUPLICATE),
                static_summary=f"Bulk job {key} of queue {queue}: {job.items or 0:,} items",
                static_details=f"Row {job.id} of the jobs table; `outbound jobs show {job.id}` counts its items.",
            )
        return Enqueued(job, created)

    async def cancel(self, reference: str) -> JobView:
        job = self.get(reference)
        if job.status.finished:
            raise JobError(
                f"job {job.queue}/{job.job_key} is {job.status.value}; only an unfinished job is cancelled", "conflict"
            )
        try:
            await self.handle(job).cancel()
        except RPCError as error:
            raise JobError(
                f"job {job.queue}/{job.job_key} has no running workflow to cancel ({error.message})", "conflict"
            ) from None
        return job

    async def retry(self, reference: str) -> JobView:
        """A failed or cancelled job runs again under the same id, its attempts anew."""
        job = self.get(reference)
        spec = self._queue(job.queue)
        if job.items:
            raise JobError(
                f"job {job.queue}/{job.job_key} is a bulk job: its failed items are dead letters, and a new"
                " bulk job runs the items again",
                "conflict",
            )
        with unit_of_work(self.sessions) as session:
            now = datetime.now(UTC)
            close_job_letters(session, job.id, DeadLetterStatus.RESOLVED, now)
            if not reset_for_retry(session, job.id, now):
                raise JobError(
                    f"job {job.queue}/{job.job_key} is {job.status.value}; only a failed or cancelled job is retried",
                    "conflict",
                )
            job = view(session.get_one(Job, job.id))
        await self._closed(job)
        await self._start(job, spec, 0.0, reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        return job

    async def _closed(self, job: JobView, timeout: float = 30) -> None:
        """The job's row says cancelled or failed before its workflow's last task has run; a
        start meanwhile would join that closing run (the id's conflict policy) and the job
        would not run again. So the retry waits for the run to close (bounded)."""
        await job_runs_closed(self.client, [(job.queue, job.job_key)], self.prefix, timeout)

    def get(self, reference: str) -> JobView:
        return self.lookup(self.sessions, reference)

    @staticmethod
    def lookup(sessions: SessionFactory, reference: str) -> JobView:
        """A job by row id, QUEUE/JOB_ID or job id; JobError naming what was not found."""
        with sessions() as session:
            try:
                row = find_job(session, reference)
            except LookupError as error:
                raise JobError(str(error)) from None
            if row is None:
                raise JobError(f"no job {reference!r} (give its row id, QUEUE/JOB_ID or its job id)", "not_found")
            job = view(row)
            if row.items:
                counts = item_counts(session, row.id)
                done = {"completed": counts.completed, "failed": counts.failed, "pending": counts.pending}
                job = job.model_copy(update={"item_counts": done})
            return job

    def handle(self, job: JobView) -> WorkflowHandle[Any, JobOutcome]:
        workflow_id = job_workflow_id(job.queue, job.job_key, self.prefix)
        return self.client.get_workflow_handle(workflow_id, result_type=JobOutcome)

    def bulk_handle(self, job: JobView) -> WorkflowHandle[Any, BulkOutcome]:
        workflow_id = job_workflow_id(job.queue, job.job_key, self.prefix)
        return self.client.get_workflow_handle(workflow_id, result_type=BulkOutcome)

    async def _start(
        self,
        job: JobView,
        spec: QueueSpec,
        delay_seconds: float,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE,
    ) -> None:
        await self.client.start_workflow(
            JOB_WORKFLOW,
            JobInput(
                job_id=job.id,
                queue=job.queue,
                attempts=job.attempts_allowed,
                timeout_seconds=spec.timeout_seconds,
                task_queue_prefix=self.prefix,
            ),
            **self._placement(job, reuse),
            start_delay=timedelta(seconds=delay_seconds) if delay_seconds > 0 else None,
            static_summary=f"Job {job.job_key} of queue {job.queue}" + (f" ({job.name})" if job.name else ""),
            static_details=f"Row {job.id} of the jobs table; `outbound jobs show {job.id}` has its data and result.",
        )

    def _placement(self, job: JobView, reuse: WorkflowIDReusePolicy) -> dict[str, Any]:
        """What every job workflow is started with: its id (an existing run is used, so a
        start is idempotent), its queue's task queue, its priority, its search attributes."""
        return {
            "id": job_workflow_id(job.queue, job.job_key, self.prefix),
            "task_queue": job_queue(job.queue, self.prefix),
            "id_reuse_policy": reuse,
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "priority": Priority(priority_key=job.priority),
            "search_attributes": TypedSearchAttributes(
                [SearchAttributePair(JOB_QUEUE, job.queue), SearchAttributePair(JOB_STATUS, _visible_status(job))]
            ),
        }

    def _queue(self, name: str) -> QueueSpec:
        try:
            return self.jobs.queue(name)
        except LookupError as error:
            raise JobError(str(error)) from None


def _visible_status(job: JobView) -> str:
    """`JobStatus` as a job's workflow starts: a job due now is active from its first
    moment in the Web UI (its workflow would say so in its first task anyway, at the cost
    of one more visibility write per job); a delayed one says so until its time comes."""
    return JobStatus.ACTIVE.value if job.status is JobStatus.WAITING else job.status.value


def _checked_key(key: str) -> str:
    if not key or len(key) > JOB_KEY_LIMIT or any(ch.isspace() or ch == "/" for ch in key):
        raise JobError(f"a job id is 1 to {JOB_KEY_LIMIT} characters without spaces or '/', got {key!r}")
    return key


def _remaining_delay(job: JobView) -> float:
    if job.status is not JobStatus.DELAYED or job.run_after is None:
        return 0.0
    return max((job.run_after - datetime.now(UTC)).total_seconds(), 0.0)


async def job_runs_closed(client: Client, jobs: Iterable[tuple[str, str]], prefix: str, timeout: float) -> None:
    """Until the workflows of these (queue, job id) pairs have closed, or `timeout` seconds.
    A job's row says how it ended before its workflow's last task has run: whoever acts
    on that ending (a retry starting the id again, a worker about to stop) waits for the
    run to close. Best effort: a run that failed or was cancelled has closed too."""
    handles = [client.get_workflow_handle(job_workflow_id(queue, key, prefix)) for queue, key in jobs]
    with contextlib.suppress(Exception):
        closing = asyncio.gather(*(handle.result() for handle in handles), return_exceptions=True)
        await asyncio.wait_for(closing, timeout)
