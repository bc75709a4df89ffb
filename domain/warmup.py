"""Warmup ramps: how many messages a new mailbox may send on a given day.

A new mailbox that suddenly sends hundreds of emails looks like a spammer, so its daily
limit climbs: `start` on the first day, `increment` more each day, never above `ceiling`.
The limit is a pure function of the day (DESIGN R6), so the daily reset can run late,
twice, or after days of downtime and still set the same limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

MAX_DAILY_LIMIT = 1_000_000  # far above any real mailbox; catches a typo such as an extra zero run


@dataclass(frozen=True, slots=True, kw_only=True)
class WarmupRamp:
    start: int
    increment: int
    ceiling: int
    began_on: date

    def __post_init__(self) -> None:
        problems = validate_ramp(self.start, self.increment, self.ceiling)
        if problems:
            raise ValueError("; ".join(problems))

    def limit_on(self, day: date) -> int:
        """The limit of `day`; days before the ramp began get the starting limit."""
        days = max((day - self.began_on).days, 0)
        return min(self.ceiling, self.start + self.increment * days)

    def ceiling_reached_on(self) -> date:
        """The first day the limit is the ceiling."""
        steps = -(-(self.ceiling - self.start) // self.increment)  # ceiling division
        return self.began_on + timedelta(days=steps)

    def describe(self) -> str:
        return f"{self.start} +{self.increment}/day up to {self.ceiling}, from {self.began_on.isoformat()}"


def validate_ramp(start: int, increment: int, ceiling: int) -> list[str]:
    """Every problem with a ramp, worded for the `senders warmup` options."""
    problems = []
    if start < 1:
        problems.append(f"--start must be at least 1 (got {start})")
    if increment < 1:
        problems.append(f"--increment must be at least 1 (got {increment})")
    if ceiling < start:
        problems.append(f"--ceiling must be at least --start ({start}), got {ceiling}")
    if ceiling > MAX_DAILY_LIMIT:
        problems.append(f"--ceiling must be at most {MAX_DAILY_LIMIT:,} (got {ceiling:,})")
    return problems


def ramp_of(start: int | None, increment: int | None, ceiling: int | None, began_on: date | None) -> WarmupRamp | None:
    """The ramp stored on a sender row, or None when the sender is not warming up."""
    if start is None or increment is None or ceiling is None or began_on is None:
        return None
    return WarmupRamp(start=start, increment=increment, ceiling=ceiling, began_on=began_on)
