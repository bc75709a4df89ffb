"""Inputs and results of activities. `now` is always the workflow's clock, so activities
agree with workflow time (also under the time-skipping test server)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from schemas.enums import CampaignStatus, SendOutcome, SkipReason
from schemas.workflow_io import PlanCursor, StepPlan


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


class PrepareCampaignResult(BaseModel):
    steps: list[StepPlan]
    counts: EnrollmentCounts


class LifecycleInput(BaseModel):
    campaign_id: int
    state: CampaignStatus
    version: int
    now: datetime
    paused_at: datetime | None = None  # set on resume: the pause being closed
    shifted_steps: list[StepPlan] = Field(default_factory=list)


class LifecycleResult(BaseModel):
    """What a lifecycle change tells the workflow back: on resume, the shifted steps' new
    starts in the campaign's time zone (the workflow cannot label them itself)."""

    start_labels: dict[int, str] = Field(default_factory=dict, description="step id -> local start label")


class StopContactInput(BaseModel):
    contact_id: int
    reason: SkipReason
    now: datetime
    event_id: str | None = None


class PlanStepInput(BaseModel):
    step_id: int
    now: datetime
    since: PlanCursor | None = Field(None, description="plan only from here; None reads every enrollment")


class PlanStepResult(BaseModel):
    planned: int
    skipped: int
    previous_finished: bool
    open_rows: int  # counted up to db.planning.OPEN_COUNT_CAP: the workflow asks "any left?"
    next_due: datetime | None
    # For the next pass while the previous step still sends; None once it has finished
    # (and in older histories).
    cursor: PlanCursor | None = None


class FetchDueInput(BaseModel):
    step_id: int
    now: datetime
    limit: int = Field(ge=0, le=1000)
    lease_seconds: int
    exclude: list[int] = Field(default_factory=list, max_length=1000)


class FetchDueResult(BaseModel):
    execution_ids: list[int] = Field(max_length=1000)
    # The contact of each execution (same order), so a send's summary and failure name it;
    # empty in older histories.
    contact_ids: list[int] = Field(default_factory=list, max_length=1000)
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


class SendResult(BaseModel):
    outcome: SendOutcome
    detail: str | None = None


class DeadLetterInput(BaseModel):
    execution_id: int
    error_type: str
    message: str = Field(max_length=2000)
    attempts: int
    now: datetime


class SettleInput(BaseModel):
    execution_ids: list[int] = Field(max_length=1000)
    now: datetime
