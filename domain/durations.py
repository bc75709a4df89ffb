"""Durations as people write them in campaign files: `30s`, `15m`, `4h`, `2d`, `1w`, `1d12h`.

Days and weeks are calendar days (09:00 stays 09:00 across a DST change); seconds,
minutes and hours are absolute time. Keeping the two apart is what makes a "wait 2 days"
land at the same local hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}
_DAYS = {"d": 1, "w": 7}


@dataclass(frozen=True, slots=True)
class Span:
    """A wait: whole calendar days plus absolute seconds."""

    days: int = 0
    seconds: int = 0

    def __add__(self, other: Span) -> Span:
        return Span(self.days + other.days, self.seconds + other.seconds)

    @property
    def approx_seconds(self) -> int:
        return self.days * 86_400 + self.seconds

    def __str__(self) -> str:
        parts = []
        if self.days:
            parts.append(f"{self.days}d")
        if self.seconds or not parts:
            hours, rest = divmod(self.seconds, 3600)
            minutes, seconds = divmod(rest, 60)
            parts += [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v]
            if not parts:
                parts.append("0s")
        return "".join(parts)


def parse_span(text: str | int) -> Span:
    """Parse `2d`, `4h`, `30s`, `1d12h`; a bare integer means days."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return Span(days=text)
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 15m, 4h, 2d, 1w")
    days = seconds = 0
    for amount, unit in _PART.findall(text):
        if unit in _DAYS:
            days += int(amount) * _DAYS[unit]
        else:
            seconds += int(amount) * _SECONDS[unit]
    return Span(days, seconds)


def parse_seconds(text: str) -> int:
    """Parse an absolute duration (no calendar days allowed to mean 'local midnight')."""
    span = parse_span(text)
    return span.days * 86_400 + span.seconds
