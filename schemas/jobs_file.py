"""The job queues an operator declares (`jobs.yaml`, path from `OUTBOUND_JOBS_FILE`).

Each queue is its own Temporal task queue (DESIGN J5) with its worker slots and a
server-side rate limit, and names the handler that runs its jobs: `http` delegates each
job to the feature service that owns it (`POST <endpoint>/internal/process-job`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from domain.durations import Span
from schemas.campaign_file import SpanField
from schemas.enrichment_provider import EnrichmentProvider

VERIFY_HANDLER, ENRICH_HANDLER, WRITE_HANDLER = "verify-email", "enrich", "ai-write"  # the built-in handlers
HANDLERS = ("http", VERIFY_HANDLER, ENRICH_HANDLER, WRITE_HANDLER)
QUEUE_NAME = r"^[a-z][a-z0-9-]{0,39}$"


REPEAT_ID = r"^[a-z0-9][a-z0-9-]{0,59}$"


class RepeatSpec(BaseModel):
    """A job added on a schedule (BullMQ's repeatable jobs): `every: 1h` or `cron: '0 3 * * *'`
    (UTC), installed as a Temporal Schedule by `outbound schedules sync`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=REPEAT_ID, description="Names the schedule and each job it adds (`<id>-<time>`).")
    every: SpanField | None = Field(None, description="An interval: 30s, 15m, 1h, 1d.")
    cron: str | None = Field(None, description="A cron expression in UTC (five fields).")
    name: str | None = Field(None, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_timing(self) -> RepeatSpec:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of `every` and `cron`")
        if self.every is not None and self.every.approx_seconds < 1:
            raise ValueError("every must be at least 1s")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError("cron takes five fields: minute hour day-of-month month day-of-week (UTC)")
        return self


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=QUEUE_NAME, description="Lower case, digits and dashes; the task queue `jobs-<name>`.")
    handler: Literal["http", "verify-email", "enrich", "ai-write"] = Field(
        description="`http`: POST each job to the feature service at `endpoint`; `verify-email`: the built-in"
        " email verification (syntax, DNS, disposable and role addresses); `enrich`: ask the `provider`"
        " about a contact and store what it knows; `ai-write`: a language model writes a campaign's"
        " `{{ ai.<name> }}` texts for a contact."
    )
    endpoint: AnyHttpUrl | None = Field(None, description="The feature service's base URL (handler `http`).")
    provider: EnrichmentProvider | None = Field(None, description="Handler `enrich`: the provider to ask.")
    slots: int = Field(8, ge=1, le=1000, description="Jobs one worker process runs at once from this queue.")
    rate_limit: float | None = Field(
        None, gt=0, description="Jobs started per second across every worker (enforced by the Temporal server)."
    )
    timeout: SpanField = Field(default_factory=lambda: Span(seconds=30), description="One attempt's time limit.")
    attempts: int = Field(3, ge=1, le=100, description="Attempts before the job fails (retries back off 2 s, 4 s …).")
    priority: int = Field(3, ge=1, le=5, description="Default priority, 1 (first) to 5 (last).")
    repeat: list[RepeatSpec] = Field(default_factory=list, description="Jobs added on a schedule.")

    @model_validator(mode="after")
    def _handler_needs(self) -> QueueSpec:
        if self.handler == "http" and self.endpoint is None:
            raise ValueError("handler http needs an `endpoint` (the feature service's base URL)")
        if (self.handler == "enrich") != (self.provider is not None):
            raise ValueError("handler enrich needs a `provider`, and only it takes one")
        if self.timeout.days or not 1 <= self.timeout.seconds <= 3600:
            raise ValueError("timeout must be between 1s and 1h")
        ids = [repeat.id for repeat in self.repeat]
        if len(ids) != len(set(ids)):
            raise ValueError("repeat ids must be unique within a queue")
        return self

    def repeat_spec(self, repeat_id: str) -> RepeatSpec:
        for repeat in self.repeat:
            if repeat.id == repeat_id:
                return repeat
        raise LookupError(f"queue {self.name!r} has no repeat {repeat_id!r} in the jobs file")

    @property
    def timeout_seconds(self) -> int:
        return self.timeout.seconds


class JobsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queues: list[QueueSpec] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_names(self) -> JobsFile:
        first: dict[str, int] = {}
        for index, queue in enumerate(self.queues):
            if queue.name in first:
                raise ValueError(
                    f"queues[{index}]: duplicate queue name {queue.name!r} (also queues[{first[queue.name]}])"
                )
            first[queue.name] = index
        return self

    def with_builtins(self) -> JobsFile:
        """These queues, plus the built-in queue of each built-in handler none of them runs
        (`verify-email`, `ai`), so verification and written texts work without a jobs file."""
        missing = [queue for queue in BUILTIN_QUEUES if queue.handler not in {q.handler for q in self.queues}]
        taken = {queue.name for queue in self.queues}
        return self.model_copy(update={"queues": [*self.queues, *(q for q in missing if q.name not in taken)]})

    def for_handler(self, handler: str) -> QueueSpec:
        """The first queue that runs `handler`."""
        for queue in self.queues:
            if queue.handler == handler:
                return queue
        raise LookupError(f"no queue runs the {handler} handler; add one to the jobs file (handler: {handler})")

    def queue(self, name: str) -> QueueSpec:
        for queue in self.queues:
            if queue.name == name:
                return queue
        known = ", ".join(queue.name for queue in self.queues)
        raise LookupError(f"no queue named {name!r} in the jobs file (queues: {known})")


# A DNS lookup or two per domain, cached: many at once is cheap for the resolver.
BUILTIN_QUEUES = (
    QueueSpec(name="verify-email", handler="verify-email", slots=16, attempts=3),
    # A model call takes seconds; a few at once per worker, each allowed a minute.
    QueueSpec(name="ai", handler="ai-write", slots=4, attempts=3, timeout=Span(seconds=60)),
)


def builtin_jobs() -> JobsFile:
    """The job queues a deployment has without a jobs file."""
    return JobsFile(queues=list(BUILTIN_QUEUES))
