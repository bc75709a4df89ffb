"""Inputs and results of the scheduled maintenance workflows (warmup reset, follow-up
processor) and their activities. Counts and ids only; new fields get defaults."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WarmupResetInput(BaseModel):
    """The schedule's argument; empty today, a model so it can grow."""


class WarmupResetActivityInput(BaseModel):
    moment: datetime = Field(description="The run's scheduled time: each sender's day is taken from it.")


class WarmupResetResult(BaseModel):
    senders: int = 0
    counters_reset: int = 0
    limits_changed: int = 0
    warming_up: int = 0


class FollowUpInput(BaseModel):
    """The schedule's argument."""

    page_size: int = Field(100, ge=1, le=500, description="Steps (or campaigns) looked at per activity.")


class FollowUpPageInput(BaseModel):
    now: datetime
    after_id: int = 0
    page_size: int = Field(100, ge=1, le=500)


class FollowUpPageResult(BaseModel):
    """One page of the follow-up pass; `next_after` is None after the last page."""

    next_after: int | None = None
    due_steps: int = 0
    restarted: int = 0
    running: int = 0
    campaign_closed: int = 0


class ReconcilePageResult(BaseModel):
    next_after: int | None = None
    checked: int = 0
    closed: int = 0


class FollowUpResult(BaseModel):
    due_steps: int = 0
    restarted: int = 0
    running: int = 0
    campaign_closed: int = 0
    campaigns_checked: int = 0
    gates_closed: int = 0
