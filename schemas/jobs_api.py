"""The app's HTTP API for producers (`/v1/jobs`, `/v1/queues`): request and response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.durations import parse_seconds
from schemas.jobs import JobView


class AddJobRequest(BaseModel):
    """BullMQ's `queue.add(name, data, opts)` as one body: `jobId`, `delay` (seconds or
    `5m`), `priority` (1 first .. 5 last), `attempts`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    queue: str = Field(min_length=1, max_length=40)
    data: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(None, max_length=200)
    job_id: str | None = Field(None, alias="jobId", min_length=1, max_length=200)
    delay: float = Field(0.0, ge=0, le=365 * 86_400, description="Seconds, or a duration such as 5m or 2h.")
    priority: int | None = Field(None, ge=1, le=5)
    attempts: int | None = Field(None, ge=1, le=100)

    @field_validator("delay", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return float(parse_seconds(value)) if isinstance(value, str) else value


class AddJobResponse(BaseModel):
    created: bool  # False: the job id was taken; `job` is the existing job
    job: JobView


class QueueStats(BaseModel):
    name: str
    handler: str
    slots: int
    rate_limit: float | None
    attempts: int
    priority: int
    counts: dict[str, int]
