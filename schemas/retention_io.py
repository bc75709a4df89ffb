"""Input and result of `RetentionWorkflow` (started daily by its schedule with `[{}]`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RetentionRunInput(BaseModel):
    """Every field has a default: the schedule starts the workflow with `{}`. The ages
    override the worker's `OUTBOUND_RETENTION__*` settings for one run."""

    dry_run: bool = False
    inbound_body_days: int | None = Field(None, ge=1)
    error_payload_days: int | None = Field(None, ge=1)


class RetentionPurgeInput(BaseModel):
    now: datetime  # the scheduled start time (R16), so a late run purges what it was meant to
    dry_run: bool = False
    inbound_body_days: int | None = Field(None, ge=1)
    error_payload_days: int | None = Field(None, ge=1)


class RetentionCounts(BaseModel):
    """Rows purged (or, in a dry run, that would be)."""

    inbound_messages: int = 0
    executions: int = 0
    events: int = 0  # events for the app deleted (with their deliveries and attempts)
    dead_letters: int = 0
    inbound_before: datetime
    errors_before: datetime
    dry_run: bool = False
