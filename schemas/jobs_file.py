"""The job queues an operator declares (`jobs.yaml`, path from `OUTBOUND_JOBS_FILE`).

Each queue is its own Temporal task queue (DESIGN J5) with its worker slots and a
server-side rate limit, and names the handler that runs its jobs: `http` delegates each
job to the feature service that owns it (`POST <endpoint>/internal/process-job`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from domain.durations import Span
from schemas.campaign_file import SpanField

HANDLERS = ("http",)  # built-in handlers join this list as they are added
QUEUE_NAME = r"^[a-z][a-z0-9-]{0,39}$"


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=QUEUE_NAME, description="Lower case, digits and dashes; the task queue `jobs-<name>`.")
    handler: Literal["http"] = Field(description="`http`: POST each job to the feature service at `endpoint`.")
    endpoint: AnyHttpUrl | None = Field(None, description="The feature service's base URL (handler `http`).")
    slots: int = Field(8, ge=1, le=1000, description="Jobs one worker process runs at once from this queue.")
    rate_limit: float | None = Field(
        None, gt=0, description="Jobs started per second across every worker (enforced by the Temporal server)."
    )
    timeout: SpanField = Field(default_factory=lambda: Span(seconds=30), description="One attempt's time limit.")
    attempts: int = Field(3, ge=1, le=100, description="Attempts before the job fails (retries back off 2 s, 4 s …).")
    priority: int = Field(3, ge=1, le=5, description="Default priority, 1 (first) to 5 (last).")

    @model_validator(mode="after")
    def _handler_needs(self) -> QueueSpec:
        if self.handler == "http" and self.endpoint is None:
            raise ValueError("handler http needs an `endpoint` (the feature service's base URL)")
        if self.timeout.days or not 1 <= self.timeout.seconds <= 3600:
            raise ValueError("timeout must be between 1s and 1h")
        return self

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

    def queue(self, name: str) -> QueueSpec:
        for queue in self.queues:
            if queue.name == name:
                return queue
        known = ", ".join(queue.name for queue in self.queues)
        raise LookupError(f"no queue named {name!r} in the jobs file (queues: {known})")
