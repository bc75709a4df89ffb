"""Inputs and results of activities. `now` is always the workflow's clock, so activities
agree with workflow time (also under the time-skipping test server)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from schemas.enums import CampaignStatus, SendOutcome, SkipReason
from schemas.jobs import BulkJobInput
from schemas.workflow_io import PlanCursor, SendRetry, StepPlan


class PrepareCampaignInput(BaseModel):
    campaign_id: int
    now: datetime
    start_at: datetime
    version: int


class EnrollmentCounts(BaseModel):
    candidates: int = 0
    enrolled: int = 0
    duplicates: int = 0
    suppressed: int = 0
    stopped: int = 0
    active_elsewhere: int = 0
    unverified: int = 0  # enrolled, but skipped: a recent verdict that fails `verification:`


class PrepareCampaignResult(BaseModel):
    steps: list[StepPlan]
    counts: EnrollmentCounts
    verify_first: bool = False  # the campaign file's `verification:`: verify before the first step
    write_first: bool = False  # the campaign file's `ai:`: a model writes the texts before the first step


class LifecycleInput(BaseModel):
    campaign_id: int
    state: CampaignStatus
    version: int
    now: datetime
    paused_at: datetime | None = None  # set on resume: the pause being closed
    shifted_steps: list[StepPlan] = Field(default_factory=list)
    # Commit only the one-row gate change (and the pause record); the open rows are settled
    # or re-slotted afterwards in batches (`SettleCampaignInput`, DESIGN R20). False in
    # histories from before, where this activity also did the bulk work in one transaction.
    gate_only: bool = False


class SettleCampaignInput(BaseModel):
    """The bulk half of a lifecycle change, in bounded batches that skip locked rows and
    resume after a crash from the last heartbeat (DESIGN R20)."""

    campaign_id: int
    state: CampaignStatus  # CANCELLED: close open rows and unplanned pairs; ACTIVE: re-slot after a pause
    now: datetime
    paused_at: datetime | None = None  # on resume: the pause that ended at `now`


class SettleCampaignResult(BaseModel):
    rows: int = 0  # open rows cancelled or re-slotted
    unplanned: int = 0  # (step, contact) pairs never planned, now CANCELLED


class LifecycleResult(BaseModel):
    """What a lifecycle change tells the workflow back: on resume, the shifted steps' new
    starts in the campaign's time zone (the workflow cannot label them itself)."""

    start_labels: dict[int, str] = Field(default_factory=dict, description="step id -> local start label")


class StopContactInput(BaseModel):
    contact_id: int
    reason: SkipReason
    now: datetime
    event_id: str | None = None


# The step workflow only asks whether rows are still open; counting every open row of a
# large step on every fetch cost more than the fetch, so the count stops here.
OPEN_COUNT_CAP = 1000


class PlanStepInput(BaseModel):
    step_id: int
    now: datetime
    since: PlanCursor | None = Field(None, description="plan only from here; None reads every enrollment")
    # A pass over every enrollment in parts: at most `budget` enrollments a call, going on
    # above contact `resume_after`. None (and in older histories): the whole pass at once.
    resume_after: int | None = None
    budget: int | None = Field(None, ge=1)


class PlanStepResult(BaseModel):
    planned: int
    skipped: int
    previous_finished: bool
    open_rows: int  # counted up to db.planning.OPEN_COUNT_CAP: the workflow asks "any left?"
    next_due: datetime | None
    # For the next pass while the previous step still sends; None once it has finished
    # (and in older histories).
    cursor: PlanCursor | None = None
    # The pass stopped at its budget: the next call goes on above this contact.
    resume_after: int | None = None


class FetchDueInput(BaseModel):
    step_id: int
    now: datetime
    limit: int = Field(ge=0, le=1000)
    lease_seconds: int
    exclude: list[int] = Field(default_factory=list, max_length=1000)
    # The workflow run and this fetch's sequence number, stamped on the rows it claims: a
    # retry of the same fetch gets the same rows back (DESIGN R18). None in older histories.
    claim_token: str | None = Field(None, max_length=64)


class FetchDueResult(BaseModel):
    execution_ids: list[int] = Field(max_length=1000)
    # The contact of each execution (same order), so a send's summary and failure name it;
    # empty in older histories.
    contact_ids: list[int] = Field(default_factory=list, max_length=1000)
    # The sender of each execution (same order): a batch holds one sender's rows.
    sender_ids: list[int] = Field(default_factory=list, max_length=1000)
    next_due: datetime | None
    open_rows: int  # counted up to db.planning.OPEN_COUNT_CAP: the workflow asks "any left?"


class FinishStepInput(BaseModel):
    step_id: int
    now: datetime


class SendInput(BaseModel):
    execution_id: int
    now: datetime
    # `dlq retry`: the gate also opens for a COMPLETED campaign (its step workflows are
    # done, but a dead letter of it may still be sent); never for a cancelled one.
    dead_letter_retry: bool = False
    # A send handed over from the previous run of the step workflow (continue-as-new while
    # it waited between retries, DESIGN R19): its attempts so far are on the row, and it
    # stops retrying once the row has had this many, as if it had never changed runs.
    attempt_budget: int | None = Field(None, ge=1)


class SendResult(BaseModel):
    outcome: SendOutcome
    detail: str | None = None


class SendBatchInput(BaseModel):
    """Up to `Tuning.send_batch_size` due rows of one sender, sent one after the other by
    one activity. Each row keeps its own gate, exactly-once protocol, outcome and retries
    (a failed message goes back to the database with its next time)."""

    execution_ids: list[int] = Field(min_length=1, max_length=100)
    now: datetime
    retry: SendRetry


class BatchItem(BaseModel):
    """What became of one row of a batch."""

    execution_id: int
    outcome: SendOutcome
    detail: str | None = Field(None, max_length=300)


class SendBatchResult(BaseModel):
    items: list[BatchItem] = Field(default_factory=list, max_length=100)


class DeadLetterInput(BaseModel):
    execution_id: int
    error_type: str
    message: str = Field(max_length=2000)
    attempts: int  # what the workflow knows (0: unknown); the row's own count wins when higher
    now: datetime
    retry_state: str | None = Field(None, max_length=40, description="why retries stopped (Temporal's RetryState)")


class SettleInput(BaseModel):
    execution_ids: list[int] = Field(max_length=1000)
    now: datetime
    # Also the step's messages waiting on their rows for a batch's next attempt, which no
    # activity holds (OUTBOUND_SEND_BATCH_SIZE above 1).
    waiting_of_step: int | None = None


class SettleResult(BaseModel):
    """A full page of the step's waiting messages was settled: there may be more, which
    the workflow settles with another call (each page with its own retries)."""

    more_waiting: bool = False


class ContactsJobInput(BaseModel):
    campaign_id: int
    now: datetime
    task_queue_prefix: str = ""


class ContactsJobPlan(BaseModel):
    """A bulk job over a campaign's contacts before its first step (verification, written
    texts): its row is written; the campaign workflow runs it as a child on its own queue."""

    job_key: str
    queue: str
    priority: int
    contacts: int
    bulk: BulkJobInput


class ApplyVerificationInput(BaseModel):
    campaign_id: int
