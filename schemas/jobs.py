"""Jobs (DESIGN J1, J2): their states, and what the job workflow and its activities pass
each other. Ids only: job data and results stay in the `jobs` row, out of history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class JobStatus(StrEnum):
    WAITING = "waiting"  # enqueued, not started
    DELAYED = "delayed"  # waits for its `run_after`
    ACTIVE = "active"  # an attempt runs, or waits to retry
    COMPLETED = "completed"
    FAILED = "failed"  # attempts used up, or refused for good; dead-lettered
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobInput(BaseModel):
    """The job workflow's input: the row and how to run it, never the data."""

    job_id: int  # the `jobs` row
    queue: str
    attempts: int = Field(ge=1)
    timeout_seconds: int = Field(ge=1)
    task_queue_prefix: str = ""


class RepeatJobInput(BaseModel):
    """A schedule's run of a repeatable job: which entry of the jobs file, not its data."""

    queue: str
    repeat_id: str
    task_queue_prefix: str = ""


class AddRepeatJobInput(BaseModel):
    queue: str
    repeat_id: str
    scheduled_at: datetime


class AddedRepeatJob(BaseModel):
    job_id: int
    job_key: str
    attempts: int
    timeout_seconds: int


class RunJobInput(BaseModel):
    job_id: int
    queue: str


class JobOutcome(BaseModel):
    """What the workflow learns of an attempt: how it ended, no result payload."""

    status: JobStatus
    attempts_made: int


class FinishJobInput(BaseModel):
    job_id: int
    queue: str = ""
    status: JobStatus  # FAILED (retries exhausted or refused for good) or CANCELLED
    error_type: str | None = None
    error: str | None = None
    retry_state: str | None = None
    now: datetime


class JobView(BaseModel):
    """A job as `jobs show` and the API present it."""

    id: int
    queue: str
    job_key: str
    name: str | None
    status: JobStatus
    priority: int
    attempts_allowed: int
    attempts_made: int
    data: dict[str, Any]
    progress: Any
    result: Any
    error: str | None
    run_after: datetime | None
    items: int | None = None  # a bulk job's item count
    item_counts: dict[str, int] | None = None  # a bulk job: completed, failed, pending
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BulkJobInput(BaseModel):
    """A bulk job's workflow (DESIGN J4): its row, how to run each item, where it stands."""

    job_id: int
    queue: str
    attempts: int = Field(ge=1)
    timeout_seconds: int = Field(ge=1)
    window: int = Field(100, ge=1, le=1000)  # items in flight at once
    batch: int = Field(1, ge=1, le=100)  # items per activity; 1: an activity per item, as runs before batches did
    task_queue_prefix: str = ""
    claims: int = 0  # claims made by earlier runs: the next claim's token is unique
    items: int = 0  # the job's item count, for the progress the Web UI shows
    done: int = 0  # items finished by earlier runs (completed or failed)
    failed: int = 0


class ClaimItemsInput(BaseModel):
    job_id: int
    limit: int
    claim_token: str  # `<run id>:<claim number>`
    take_over: bool = False  # also take items left active by another run (one that was lost)
    now: datetime | None = None  # the workflow's time, against which retry times are due (None: the clock's)


class ClaimItemsResult(BaseModel):
    item_ids: list[int]
    open_items: int  # waiting or active, after this claim
    next_retry_at: datetime | None = None  # nothing claimed: when the first item waiting for its retry is due


class RunItemInput(BaseModel):
    item_id: int
    queue: str


class RunItemsInput(BaseModel):
    """A batch of a bulk job's items, run one after another in one activity."""

    job_id: int
    queue: str
    item_ids: list[int]
    attempts: int = Field(ge=1)  # each item's attempts: a retryable failure with none left is final
    now: datetime | None = None  # the workflow's time as the batch began: retry times are on its clock


class RunItemsResult(BaseModel):
    completed: int = 0
    failed: int = 0  # failed for good in the batch (refused, or out of attempts), dead letters written
    retrying: int = 0  # back in the table, waiting for their retry time


class FailItemInput(BaseModel):
    item_id: int
    job_id: int
    queue: str
    error_type: str
    error: str
    retry_state: str | None = None
    now: datetime


class FinishBulkInput(BaseModel):
    job_id: int
    queue: str
    now: datetime


class BulkOutcome(BaseModel):
    completed: int
    failed: int
