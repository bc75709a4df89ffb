"""Activities of the job workflow: run one attempt through the queue's handler, and close
a job that failed for good or was cancelled (DESIGN J1 to J3).

The job's data is read from its row here and its result written back here, so neither
enters workflow history; the workflow sees ids and a status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.engine import SessionFactory, unit_of_work
from db.job_dead_letters import write_job_letter
from db.job_items import (
    ItemAttempt,
    claim_items,
    finish_item,
    item_counts,
    item_for_attempt,
    job_identity,
    next_retry_at,
    note_item_error,
    open_items,
    retry_later,
)
from db.jobs import NewJob, begin_attempt, complete, enqueue, finish, record_failed_attempt, set_progress
from db.models import Job, JobItem
from domain.job_backoff import backoff_after
from handlers.base import BatchJobHandler, JobDone, JobFailed, JobHandler, JobRequest, ProgressReport
from runtime.metrics import NO_METRICS, OutboundMetrics
from schemas.jobs import (
    AddedRepeatJob,
    AddRepeatJobInput,
    BulkOutcome,
    ClaimItemsInput,
    ClaimItemsResult,
    FailItemInput,
    FinishBulkInput,
    FinishJobInput,
    JobOutcome,
    JobStatus,
    RunItemInput,
    RunItemsInput,
    RunItemsResult,
    RunJobInput,
)
from schemas.jobs_file import JobsFile

# The largest progress (as JSON) a heartbeat carries to the Web UI: the row keeps any size.
PROGRESS_IN_HEARTBEAT = 1024
# Error types the workflow and `dlq show` read.
RETRYABLE_FAILURE = "JobAttemptFailed"
PERMANENT_FAILURE = "JobRefused"


class JobActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        handlers: Mapping[str, JobHandler],
        jobs: JobsFile | None = None,
        metrics: OutboundMetrics = NO_METRICS,
    ) -> None:
        self.sessions = sessions
        self.handlers = handlers
        self.jobs = jobs
        self.metrics = metrics
        # A bulk job's id, queue and name never change: read once per job, not per item.
        self._identities: dict[int, tuple[str, str, str | None]] = {}

    @activity.defn
    def add_repeat_job(self, request: AddRepeatJobInput) -> AddedRepeatJob:
        """The job a schedule's run adds: its data from this worker's jobs file, its id the
        repeat's id and the scheduled time (a retried or replayed run adds it once)."""
        if self.jobs is None:
            raise ApplicationError("this worker has no jobs file", type="QueueUnknown", non_retryable=True)
        try:
            queue = self.jobs.queue(request.queue)
            repeat = queue.repeat_spec(request.repeat_id)
        except LookupError as error:
            raise ApplicationError(str(error), type="QueueUnknown", non_retryable=True) from None
        key = f"{repeat.id}-{request.scheduled_at:%Y%m%dT%H%M%SZ}"
        new = NewJob(queue.name, key, dict(repeat.data), queue.priority, queue.attempts, name=repeat.name)
        with unit_of_work(self.sessions) as session:
            job_id, _ = enqueue(session, new, _now())
        return AddedRepeatJob(
            job_id=job_id, job_key=key, attempts=queue.attempts, timeout_seconds=queue.timeout_seconds
        )

    @activity.defn
    def run_job(self, request: RunJobInput) -> JobOutcome:
        """One attempt. A retryable failure raises (the retry policy backs off, or waits the
        service's `Retry-After`); a permanent one raises non-retryable."""
        attempt = activity.info().attempt
        with unit_of_work(self.sessions) as session:
            job = begin_attempt(session, request.job_id, attempt, _now())
            if job is None:  # cancelled, or finished by an earlier attempt whose answer was lost
                row = session.get(Job, request.job_id)
                return JobOutcome(status=JobStatus(row.status) if row else JobStatus.CANCELLED, attempts_made=attempt)
        job_request = JobRequest(job.job_key, job.queue, job.name, dict(job.data), attempt - 1)
        handler = self._handler(request.queue)
        try:
            done = handler.run(job_request, lambda progress: self._progress(request.job_id, progress))
        except JobFailed as failure:
            with unit_of_work(self.sessions) as session:
                record_failed_attempt(session, request.job_id, str(failure), failure.progress, attempt, _now())
            self.metrics.job(request.queue, "attempt_failed")
            raise _for_the_retry_policy(failure) from None
        with unit_of_work(self.sessions) as session:
            complete(session, request.job_id, done.result, done.progress, attempt, _now())
        self.metrics.job(request.queue, "completed")
        activity.logger.info("job %s of queue %s completed on attempt %s", request.job_id, request.queue, attempt)
        return JobOutcome(status=JobStatus.COMPLETED, attempts_made=attempt)

    @activity.defn
    def finish_job(self, request: FinishJobInput) -> bool:
        """FAILED (retries used up, or refused for good) or CANCELLED, once."""
        with unit_of_work(self.sessions) as session:
            changed = finish(session, request.job_id, request.status, request.error, request.now)
            if changed and request.status is JobStatus.FAILED:
                job = session.get_one(Job, request.job_id)
                error_type = request.error_type or "JobFailed"
                write_job_letter(
                    session,
                    request.job_id,
                    error_type,
                    request.error or error_type,
                    job.attempts_made,
                    request.retry_state,
                    request.now,
                )
        if changed:
            self.metrics.job(request.queue, request.status.value)
            activity.logger.warning(
                "job %s %s: %s", request.job_id, request.status.value, request.error_type or request.retry_state
            )
        return changed

    # --- bulk jobs (DESIGN J4) --------------------------------------------------------

    @activity.defn
    def claim_items(self, request: ClaimItemsInput) -> ClaimItemsResult:
        with unit_of_work(self.sessions) as session:
            begin_attempt(session, request.job_id, 1, _now())  # the job is active while its items run
            ids = claim_items(
                session, request.job_id, request.limit, request.claim_token, request.now or _now(),
                take_over=request.take_over,
            )  # fmt: skip
            remaining = open_items(session, request.job_id)
            retry_at = next_retry_at(session, request.job_id) if not ids and remaining else None
        return ClaimItemsResult(item_ids=ids, open_items=remaining, next_retry_at=retry_at)

    @activity.defn
    def run_item(self, request: RunItemInput) -> bool:
        """One attempt at one item, through the queue's handler; the item's own id within
        the job (`<job id>:<line>`) is the idempotency key the service sees."""
        attempt = activity.info().attempt
        with unit_of_work(self.sessions) as session:
            item = item_for_attempt(session, request.item_id, attempt, _now())
            if item is None:
                return False
            job_request = self._item_request(session, item)
        try:
            done = self._handler(request.queue).run(job_request, lambda progress: activity.heartbeat())
        except JobFailed as failure:
            with unit_of_work(self.sessions) as session:
                note_item_error(session, request.item_id, str(failure), _now())
            self.metrics.job(request.queue, "item_attempt_failed")
            raise _for_the_retry_policy(failure) from None
        self._item_completed(request.item_id, request.queue, done)
        return True

    @activity.defn
    def run_items(self, request: RunItemsInput) -> RunItemsResult:
        """A batch of items, one after another, each with its own outcome: completed, failed
        for good (refused, or out of attempts: its dead letter written here), or back in the
        table until its retry time (the backoff, or the service's `Retry-After`), so one
        item's failure never repeats the rest and nothing waits in the workflow (R19).
        The heartbeat carries how far the batch got: a retry after a crash starts there, and
        an item that had finished is skipped by its status anyway."""
        handler = self._handler(request.queue)
        details = activity.info().heartbeat_details
        start = int(details[0]) if details else 0
        result = RunItemsResult()
        began = _now()
        clock = request.now or began  # retry times on the workflow's clock, which claims compare them with
        if isinstance(handler, BatchJobHandler):
            return self._run_items_together(request, handler, clock, began)
        for position in range(start, len(request.item_ids)):
            item_id = request.item_ids[position]
            with unit_of_work(self.sessions) as session:
                item = item_for_attempt(session, item_id, None, _now())
                job_request = self._item_request(session, item) if item is not None else None
            if item is None or job_request is None:
                continue
            try:
                outcome: JobDone | JobFailed = handler.run(job_request, _heartbeat_at(position))
            except JobFailed as failure:
                outcome = failure
            self._settle_item(request, item_id, item.attempts, outcome, clock + (_now() - began), result)
            activity.heartbeat(position + 1)
        return result

    def _run_items_together(
        self, request: RunItemsInput, handler: BatchJobHandler, clock: datetime, began: datetime
    ) -> RunItemsResult:
        """A handler that does many items in one call (a provider's batch endpoint): the
        items of the activity go together, each still settled on its own."""
        result = RunItemsResult()
        claimed: list[tuple[int, int, JobRequest]] = []
        for item_id in request.item_ids:
            with unit_of_work(self.sessions) as session:
                item = item_for_attempt(session, item_id, None, _now())
                job_request = self._item_request(session, item) if item is not None else None
            if item is not None and job_request is not None:
                claimed.append((item_id, item.attempts, job_request))
        outcomes = handler.run_batch([job_request for _, _, job_request in claimed], lambda _: activity.heartbeat())
        for (item_id, attempts, _), outcome in zip(claimed, outcomes, strict=True):
            self._settle_item(request, item_id, attempts, outcome, clock + (_now() - began), result)
        return result

    def _settle_item(
        self,
        request: RunItemsInput,
        item_id: int,
        attempts: int,
        outcome: JobDone | JobFailed,
        clock_now: datetime,
        result: RunItemsResult,
    ) -> None:
        """One item's outcome: completed, back in the table until its retry time (the
        backoff or the service's `Retry-After`, on the workflow's clock), or failed for good
        with its dead letter."""
        if isinstance(outcome, JobDone):
            self._item_completed(item_id, request.queue, outcome)
            result.completed += 1
            return
        self.metrics.job(request.queue, "item_attempt_failed")
        if outcome.retryable and attempts < request.attempts:
            wait = backoff_after(attempts) if outcome.retry_after is None else timedelta(seconds=outcome.retry_after)
            with unit_of_work(self.sessions) as session:
                retry_later(session, item_id, str(outcome)[:1000], clock_now + wait, _now())
            result.retrying += 1
            return
        error_type = RETRYABLE_FAILURE if outcome.retryable else PERMANENT_FAILURE
        retry_state = "MAXIMUM_ATTEMPTS_REACHED" if outcome.retryable else "NON_RETRYABLE_FAILURE"
        self._item_failed(item_id, request.job_id, request.queue, error_type, str(outcome), retry_state)
        result.failed += 1

    @activity.defn
    def fail_item(self, request: FailItemInput) -> None:
        """An item that failed for good: its status, and a dead letter naming its job."""
        self._item_failed(
            request.item_id, request.job_id, request.queue, request.error_type, request.error,
            request.retry_state, request.now,
        )  # fmt: skip

    def _item_request(self, session: Session, item: ItemAttempt) -> JobRequest:
        """What the handler gets for an item: its id within the job (`<job id>:<line>`),
        the service's idempotency key. A bulk job's id, queue and name never change: read
        once per job, not per item."""
        identity = self._identities.get(item.job_id)
        if identity is None:
            if len(self._identities) >= 10_000:  # a long-lived worker: keep it small
                self._identities.clear()
            identity = self._identities[item.job_id] = job_identity(session, item.job_id)
        job_key, queue, name = identity
        return JobRequest(f"{job_key}:{item.seq}", queue, name, dict(item.data), item.attempts - 1)

    def _item_completed(self, item_id: int, queue: str, done: JobDone) -> None:
        with unit_of_work(self.sessions) as session:
            finish_item(session, item_id, "completed", _now(), result=done.result)
        self.metrics.job(queue, "item_completed")

    def _item_failed(
        self,
        item_id: int,
        job_id: int,
        queue: str,
        error_type: str,
        error: str,
        retry_state: str | None,
        now: datetime | None = None,
    ) -> None:
        now = now or _now()
        with unit_of_work(self.sessions) as session:
            if finish_item(session, item_id, "failed", now, error=error[:1000]):
                item = session.get_one(JobItem, item_id)
                letter = f"item {item.seq}: {error[:1000]}"
                write_job_letter(session, job_id, error_type, letter, item.attempts, retry_state, now)
                self.metrics.job(queue, "item_failed")

    @activity.defn
    def finish_bulk(self, request: FinishBulkInput) -> BulkOutcome:
        """The bulk job is done: completed, with how many items completed and failed."""
        with unit_of_work(self.sessions) as session:
            counts = item_counts(session, request.job_id)
            result = {"completed": counts.completed, "failed": counts.failed}
            complete(session, request.job_id, result, None, 1, request.now)
        self.metrics.job(request.queue, "completed")
        return BulkOutcome(completed=counts.completed, failed=counts.failed)

    def _handler(self, queue: str) -> JobHandler:
        handler = self.handlers.get(queue)
        if handler is None:
            raise ApplicationError(
                f"queue {queue!r} is not in this worker's jobs file", type="QueueUnknown", non_retryable=True
            )
        return handler

    def _progress(self, job_id: int, progress: Any) -> None:
        """Progress goes on the row (`jobs show`, the API) and, when small, into the
        heartbeat's details, which the Web UI shows on the job's pending activity."""
        small = progress is None or len(json.dumps(progress, default=str)) <= PROGRESS_IN_HEARTBEAT
        activity.heartbeat(*([progress] if small else []))
        with unit_of_work(self.sessions) as session:
            set_progress(session, job_id, progress, _now())


def _heartbeat_at(position: int) -> ProgressReport:
    """A batch's heartbeat while an item runs: the batch resumes at this item after a crash."""

    def report(progress: Any) -> None:
        activity.heartbeat(position)

    return report


def _for_the_retry_policy(failure: JobFailed) -> ApplicationError:
    """A handler's failure as the activity raises it: retried with backoff (or after the
    service's `Retry-After`), or not at all."""
    delay = timedelta(seconds=failure.retry_after) if failure.retry_after is not None else None
    return ApplicationError(
        str(failure),
        type=RETRYABLE_FAILURE if failure.retryable else PERMANENT_FAILURE,
        non_retryable=not failure.retryable,
        next_retry_delay=delay,
    )


def _now() -> datetime:
    return datetime.now(UTC)
