"""The port every job handler implements: run one job, say how it ended.

The job workflow never knows which handler runs; it only sees a completed job, or a
failure that is retryable (with an optional `retry_after`) or permanent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class JobRequest:
    job_key: str  # the producer's job id: also the idempotency key a service sees
    queue: str
    name: str | None
    data: dict[str, Any]
    attempts_made: int  # attempts before this one, as BullMQ counts them


@dataclass(frozen=True, slots=True)
class JobDone:
    result: Any = None
    progress: Any = None


class JobFailed(Exception):
    """The attempt failed. `retryable`: try again (after `retry_after` seconds if the
    service asked for it); otherwise the job fails now, whatever attempts are left."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after: float | None = None, progress: Any = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.progress = progress


ProgressReport = Callable[[Any], None]


class JobHandler(Protocol):
    def run(self, request: JobRequest, report_progress: ProgressReport) -> JobDone: ...


@runtime_checkable
class BatchJobHandler(JobHandler, Protocol):
    """A handler that can do many items of a bulk job in one call (a provider's batch
    endpoint); each item still gets its own outcome, in the order given."""

    def run_batch(
        self, requests: Sequence[JobRequest], report_progress: ProgressReport
    ) -> list[JobDone | JobFailed]: ...
