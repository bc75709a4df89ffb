"""Inputs and outputs of the analytics aggregation: a period, a time and counts, nothing else."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Period = Literal["hour", "day"]


class AnalyticsRunInput(BaseModel):
    """What the analytics schedules start `AnalyticsWorkflow` with: `{"period": "hour"}` or
    `{"period": "day"}`."""

    period: Period
    # How many buckets back a campaign counts as touched (its buckets are then recomputed).
    # Two: the previous bucket and the one before it, so one skipped run loses nothing.
    lookback_buckets: int = Field(2, ge=1, le=1000)


class AggregateAnalyticsInput(BaseModel):
    period: Period
    now: datetime  # the scheduled start (DESIGN R16), so a late or repeated run computes the same
    lookback_buckets: int = Field(2, ge=1, le=1000)


class AggregateAnalyticsResult(BaseModel):
    period: Period
    since: datetime  # campaigns touched at or after this were recomputed
    campaigns: int = 0
    buckets_written: int = 0
    buckets_removed: int = 0
