"""Local-time arithmetic: sending windows, quiet hours and calendar-day waits.

Used only from activities (ZoneInfo is restricted inside the workflow sandbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from domain.durations import Span
from schemas.campaign_file import SendingWindow

QUIET_START = time(8, 0)
QUIET_END = time(21, 0)
_ALL_DAYS = frozenset(range(7))


@lru_cache(maxsize=1024)
def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    try:
        return ZoneInfo(name or fallback)
    except Exception:
        return ZoneInfo(fallback)


@dataclass(frozen=True, slots=True)
class LocalWindow:
    """Weekdays and a daily [start, end) in local time; `None` bounds mean all day."""

    weekdays: frozenset[int]
    start: time | None
    end: time | None

    @classmethod
    def of(cls, window: SendingWindow, quiet_hours: bool) -> LocalWindow:
        weekdays = _ALL_DAYS if window.always else window.weekday_numbers
        start = None if window.always else window.start
        end = None if window.always else window.end
        if quiet_hours:
            start = max(start or QUIET_START, QUIET_START)
            end = min(end or QUIET_END, QUIET_END)
        return cls(weekdays, start, end)

    @property
    def unrestricted(self) -> bool:
        return self.weekdays == _ALL_DAYS and self.start is None and self.end is None

    def contains(self, moment: datetime, tz: ZoneInfo) -> bool:
        return self.next_open(moment, tz) == moment

    def next_open(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """The earliest instant at or after `moment` inside the window."""
        if self.unrestricted:
            return moment
        local = moment.astimezone(tz)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.weekdays:
                continue
            opens = _local(day, self.start or time(0), tz)
            closes = _local(day, self.end, tz) if self.end else _local(day + timedelta(days=1), time(0), tz)
            if local < closes:
                return max(local, opens).astimezone(UTC)
        raise ValueError("sending window never opens")  # unreachable: at least one weekday


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def add_span(moment: datetime, span: Span, tz: ZoneInfo) -> datetime:
    """Calendar days in `tz` (keeping the local hour across DST), then absolute seconds."""
    if span.days:
        local = moment.astimezone(tz)
        wall = local.replace(tzinfo=None) + timedelta(days=span.days)
        moment = wall.replace(tzinfo=tz).astimezone(UTC)
    return (moment + timedelta(seconds=span.seconds)).astimezone(UTC)


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where a local day starts and ends."""
    start = _local(day, time(0), tz).astimezone(UTC)
    end = _local(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end
