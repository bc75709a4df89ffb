"""Spreading sends over time: windows, per-sender daily capacity and spacing.

The slotter is fed rows in batches and keeps only per-sender cursors and per-day counts,
so memory does not grow with the campaign. Counts it has not seen come from a lookup
(the database) so capacity is shared with other campaigns and earlier planning passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.calendar import LocalWindow, day_bounds, local_day
from domain.warmup import WarmupRamp

CountLookup = Callable[[int, datetime, datetime], int]  # sender, day start, day end -> already booked


@dataclass(frozen=True, slots=True)
class SenderCapacity:
    sender_id: int
    daily_limit: int
    tz: ZoneInfo
    ramp: WarmupRamp | None = None  # a warming-up mailbox: its limit grows day by day

    def limit_on(self, day: date) -> int:
        """The limit of the sender's own calendar `day`."""
        return self.ramp.limit_on(day) if self.ramp else self.daily_limit


@dataclass
class Slotter:
    window: LocalWindow
    gap_seconds: int
    jitter_seconds: int
    booked: CountLookup
    last_slot: Callable[[int], datetime | None] = lambda _sender: None
    _counts: dict[tuple[int, date], int] = field(default_factory=dict)
    _cursors: dict[int, datetime | None] = field(default_factory=dict)

    def slot(self, sender: SenderCapacity, due: datetime, contact_tz: ZoneInfo, key: str) -> datetime:
        """The send time of one message: not before `due`, inside the window, within the
        sender's daily capacity and at least the gap after the sender's previous slot."""
        moment = due
        cursor = self._cursor(sender.sender_id)
        if cursor is not None and self.gap_seconds:
            moment = max(moment, cursor + timedelta(seconds=self.gap_seconds))
        for _ in range(3660):  # ten years of full days is a configuration error, not a loop
            moment = self.window.next_open(moment, contact_tz)
            day = local_day(moment, sender.tz)
            if self._count(sender, day) < sender.limit_on(day):
                break
            moment = day_bounds(day, sender.tz)[1]
        else:
            raise ValueError(f"sender {sender.sender_id} has no capacity left in ten years")
        self._counts[(sender.sender_id, day)] += 1
        self._cursors[sender.sender_id] = moment
        return moment + timedelta(seconds=jitter(key, self.jitter_seconds))

    def _count(self, sender: SenderCapacity, day: date) -> int:
        cache_key = (sender.sender_id, day)
        if cache_key not in self._counts:
            start, end = day_bounds(day, sender.tz)
            self._counts[cache_key] = self.booked(sender.sender_id, start, end)
        return self._counts[cache_key]

    def _cursor(self, sender_id: int) -> datetime | None:
        if sender_id not in self._cursors:
            self._cursors[sender_id] = self.last_slot(sender_id) if self.gap_seconds else None
        return self._cursors[sender_id]


def jitter(key: str, spread_seconds: int) -> float:
    """A deterministic offset in [0, spread): the same execution always gets the same one."""
    if spread_seconds <= 0:
        return 0.0
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (spread_seconds * 1000) / 1000
