"""Dead letters: their states, and the inputs and results of `DeadLetterRetryWorkflow`.

Ids, statuses and error types only: no contact data ever enters the retry's history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.enums import Channel, ExecutionStatus, SendOutcome
from schemas.workflow_io import Tuning


class DeadLetterStatus(StrEnum):
    """`open` (waiting for an operator) -> `retrying` -> `resolved` or back to `open` with
    the new error; `open` -> `discarded`. Resolved and discarded letters carry `resolved_at`."""

    OPEN = "open"
    RETRYING = "retrying"
    RESOLVED = "resolved"
    DISCARDED = "discarded"

    @property
    def closed(self) -> bool:
        return self in (DeadLetterStatus.RESOLVED, DeadLetterStatus.DISCARDED)


class DeadLetterRetryInput(BaseModel):
    dead_letter_id: int
    task_queue_prefix: str = ""
    tuning: Tuning = Field(default_factory=Tuning)  # the send's retry policy, as in the step workflow
    max_rounds: int = Field(
        60, ge=1, le=300, description="Sends and re-claims before giving up on a row that keeps waiting."
    )


class BeginRetryInput(BaseModel):
    dead_letter_id: int
    now: datetime
    lease_seconds: int


class BeginRetryResult(BaseModel):
    execution_id: int
    campaign_id: int
    channel: Channel


class ClaimRetryInput(BaseModel):
    execution_id: int
    now: datetime
    lease_seconds: int


class ClaimRetryResult(BaseModel):
    """`claimed`: the row is ours again (QUEUED with our lease). Otherwise the row is
    terminal, or `wait_until` says when to look again."""

    claimed: bool
    status: ExecutionStatus
    wait_until: datetime | None = None


class FinishRetryInput(BaseModel):
    dead_letter_id: int
    now: datetime
    error_type: str | None = None  # set when the send failed again
    message: str | None = Field(None, max_length=2000)
    gave_up: bool = False  # the row kept waiting (held, deferred) past the retry's rounds


class DeadLetterRetryResult(BaseModel):
    dead_letter_id: int
    execution_id: int
    execution_status: ExecutionStatus
    letter_status: DeadLetterStatus
    outcome: SendOutcome | None = None  # the last send attempt's outcome, if it returned
    detail: str | None = None  # why (a skip reason, the new error type), never contact data
    rounds: int = 0
