"""Inputs, carried state and query results of the workflows. Ids and counts only."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio.common import RetryPolicy

from schemas.enums import CampaignStatus, Channel
from schemas.signals import Lifecycle


class SendRetry(BaseModel):
    """A message's own retries, kept on its row while its batch goes on: the backoff of
    `Tuning.send_retry_policy`, counted in the row's attempts."""

    initial_seconds: float
    backoff: float
    max_interval_seconds: float
    maximum_attempts: int

    def delay(self, attempts: int) -> float:
        """The wait after the `attempts`-th attempt failed."""
        return min(self.initial_seconds * self.backoff ** max(attempts - 1, 0), self.max_interval_seconds)


PAGE_OF_ENROLLMENTS = 5000  # db.planning.PAGE: a planning call reads whole pages


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
    # Enrollments one planning call reads while a step plans in parts: the next part is
    # planned when fewer than a fetch-count's worth of rows are left open, so planning
    # follows what is due, not the campaign's size (docs/decisions/0036).
    plan_part: int = Field(20_000, ge=1)  # whole pages of PAGE_OF_ENROLLMENTS are read
    # Messages per send activity: 1 is an activity per message (Temporal retries it); more
    # sends up to that many due rows of one sender per activity, each row with its own
    # outcome and its retries kept on the row (docs/decisions/0035).
    send_batch_size: int = Field(1, ge=1, le=100)
    # A send activity heartbeats (progress, and its row's hold) well within this: a worker
    # killed mid-send is noticed after it, not after the start-to-close timeout. None: no
    # heartbeat, only for the time-skipping test server, which stops skipping time for good
    # once a heartbeating activity of a test is left behind.
    send_heartbeat_seconds: int | None = Field(20, ge=2)
    retry_initial_seconds: float = 2.0
    retry_backoff: float = 2.0
    retry_max_interval_seconds: float = 300.0
    retry_maximum_attempts: int = Field(10, ge=1)
    cancel_grace_seconds: int = Field(600, ge=0)
    # Continue-as-new lets go of the sends in flight and the next run takes them over (R19)
    # instead of draining them, retries and all. Off only for the time-skipping test server,
    # which stops skipping time for good once a closed run leaves activities behind.
    hand_over_at_continue_as_new: bool = True

    @property
    def send_heartbeat_timeout(self) -> timedelta | None:
        return timedelta(seconds=self.send_heartbeat_seconds) if self.send_heartbeat_seconds else None

    def message_retry(self) -> SendRetry:
        """The retry policy of one message in a batch, applied by the batch itself."""
        return SendRetry(
            initial_seconds=self.retry_initial_seconds,
            backoff=self.retry_backoff,
            max_interval_seconds=self.retry_max_interval_seconds,
            maximum_attempts=self.retry_maximum_attempts,
        )

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
    verify_first: bool = False  # `verification:`: the contacts are verified before the first step
    verified: bool = False
    write_first: bool = False  # `ai:`: a model writes the contacts' texts before the first step
    written: bool = False
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
    plan_resume: int | None = Field(None, description="a pass in parts goes on above this contact")
    pass_previous_finished: bool = Field(False, description="the previous step had finished when that pass began")
    handover: list[int] = Field(
        default_factory=list,
        max_length=1000,
        description="executions whose sends the previous run left between retries; this run sends them first",
    )
