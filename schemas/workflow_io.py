"""Inputs, carried state and query results of the workflows. Ids and counts only."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio.common import RetryPolicy

from schemas.enums import CampaignStatus, Channel
from schemas.signals import Lifecycle


class Tuning(BaseModel):
    """Knobs that shape workflow behaviour; part of the input so they are deterministic."""

    model_config = ConfigDict(frozen=True)

    send_window: int = Field(200, ge=1, le=1000)
    history_threshold: int = Field(3000, ge=50, le=10_000)
    replan_interval_seconds: int = Field(300, ge=1)
    # Replans in between read only what changed in the previous step (PlanCursor); this
    # often one reads every enrollment again, a backstop that costs one scan.
    full_plan_interval_seconds: int = Field(600, ge=1)
    # A QUEUED row nobody sends (its fetch's workflow never heard of it) is offered again
    # after this long; rows a run has in flight are never re-offered to it (`exclude`).
    lease_seconds: int = Field(60, ge=30)
    send_timeout_seconds: int = Field(60, ge=1)
    retry_initial_seconds: float = 2.0
    retry_backoff: float = 2.0
    retry_max_interval_seconds: float = 300.0
    retry_maximum_attempts: int = Field(10, ge=1)
    cancel_grace_seconds: int = Field(600, ge=0)
    # Continue-as-new lets go of the sends in flight and the next run takes them over (R19)
    # instead of draining them, retries and all. Off only for the time-skipping test server,
    # which stops skipping time for good once a closed run leaves activities behind.
    hand_over_at_continue_as_new: bool = True

    def send_retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self.retry_initial_seconds),
            backoff_coefficient=self.retry_backoff,
            maximum_interval=timedelta(seconds=self.retry_max_interval_seconds),
            maximum_attempts=self.retry_maximum_attempts,
            non_retryable_error_types=["TemplateError", "ProviderPermanent", "DeliveryUnknown"],
        )


class StepPlan(BaseModel):
    step_id: int
    position: int
    channel: Channel
    start_at: datetime
    wait_seconds: int = 0  # the wait after the previous step, in (approximate) seconds
    # `start_at` in the campaign's time zone, for the Web UI ("2026-12-01 09:00 America/New_York").
    # Computed in an activity (ZoneInfo is off limits in workflows); None in older histories
    # and after a pause moved the start, when the UTC label is shown instead.
    start_label: str | None = None
    started: bool = False
    finished: bool = False


class PendingReslot(BaseModel):
    """A pause whose waiting rows a resume still has to move (in batches, in the background)."""

    paused_at: datetime
    resumed_at: datetime


class CampaignState(BaseModel):
    """Everything the campaign workflow carries across continue-as-new."""

    lifecycle: Lifecycle = Lifecycle(state=CampaignStatus.ACTIVE, version=1)
    launched_at: datetime | None = None
    start_at: datetime | None = None
    prepared: bool = False
    enrolled: int = 0
    steps: list[StepPlan] = Field(default_factory=list)
    paused_at: datetime | None = None
    paused_seconds: float = 0.0
    handled_events: list[str] = Field(default_factory=list, max_length=200)
    pending_reslots: list[PendingReslot] = Field(default_factory=list)


class CampaignInput(BaseModel):
    campaign_id: int
    start_delay_seconds: int = Field(0, ge=0)
    task_queue_prefix: str = ""
    tuning: Tuning = Field(default_factory=Tuning)
    state: CampaignState | None = None


class CampaignProgress(BaseModel):
    """The `status` query result."""

    campaign_id: int
    lifecycle: Lifecycle
    start_at: datetime | None
    enrolled: int
    steps: list[StepPlan]
    paused_since: datetime | None
    paused_seconds: float


class StepCounters(BaseModel):
    sent: int = 0
    held: int = 0
    deferred: int = 0
    reslotted: int = 0
    skipped: int = 0
    failed: int = 0


class PlanCursor(BaseModel):
    """Where the next planning pass of a later step may start instead of reading every
    enrollment: the previous step's rows that were still open, or did not exist yet, when
    this pass began (db.planning explains why nothing is missed)."""

    scheduled_from: datetime = Field(description="earliest slot of the previous step's open rows, or the pass time")
    from_id: int = Field(0, description="the lowest id of the open rows in that slot (rows leave in slot, id order)")
    after_id: int = Field(description="the previous step's highest execution id when the pass began")


class StepInput(BaseModel):
    campaign_id: int
    step_id: int
    position: int
    channel: Channel
    start_at: datetime
    lifecycle: Lifecycle
    task_queue_prefix: str = ""
    tuning: Tuning = Field(default_factory=Tuning)
    replan_seconds: int = Field(300, ge=1, description="How often new contacts are planned in.")
    previous_finished: bool = False
    counters: StepCounters = Field(default_factory=StepCounters)
    run: int = 1
    start_label: str | None = Field(None, description="`start_at` in the campaign's time zone, for the Web UI.")
    plan_cursor: PlanCursor | None = Field(None, description="where the next incremental planning pass starts")
    last_full_plan: datetime | None = Field(None, description="when a planning pass last read every enrollment")
    handover: list[int] = Field(
        default_factory=list,
        max_length=1000,
        description="executions whose sends the previous run left between retries; this run sends them first",
    )
