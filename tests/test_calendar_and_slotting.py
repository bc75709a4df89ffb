"""Sending windows, calendar-day waits and per-sender slotting (pure logic)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from domain.calendar import LocalWindow, add_span, zone
from domain.durations import Span, parse_seconds, parse_span
from domain.slotting import SenderCapacity, Slotter, jitter
from domain.warmup import WarmupRamp
from schemas.campaign_file import SendingWindow

NEW_YORK = zone("America/New_York")
BUSINESS_HOURS = LocalWindow.of(SendingWindow(), quiet_hours=False)


@pytest.mark.parametrize(
    ("text", "span"),
    [("30s", Span(0, 30)), ("4h", Span(0, 14400)), ("2d", Span(2, 0)), ("1w", Span(7, 0)), ("1d12h", Span(1, 43200))],
)
def test_durations_keep_calendar_days_apart_from_absolute_time(text: str, span: Span) -> None:
    assert parse_span(text) == span


@pytest.mark.parametrize("text", ["", "2 days", "-1d", "1.5h", "d"])
def test_a_malformed_duration_is_rejected_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_span(text)


def test_absolute_seconds_of_a_duration() -> None:
    assert parse_seconds("5m") == 300


def test_a_two_day_wait_keeps_the_local_hour_across_the_dst_change() -> None:
    friday_nine = datetime(2026, 10, 30, 13, 0, tzinfo=UTC)  # 09:00 EDT
    sunday_after_change = add_span(friday_nine, Span(days=3), NEW_YORK)
    assert sunday_after_change.astimezone(NEW_YORK).time() == time(9, 0)
    assert sunday_after_change - friday_nine == timedelta(days=3, hours=1)


def test_sub_day_waits_are_absolute() -> None:
    start = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert add_span(start, Span(seconds=3600), NEW_YORK) == start + timedelta(hours=1)


def test_outside_business_hours_the_next_window_opens_monday_morning_local() -> None:
    friday_evening = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # 18:00 in New York
    opens = BUSINESS_HOURS.next_open(friday_evening, NEW_YORK)
    assert opens.astimezone(NEW_YORK) == datetime(2026, 11, 30, 9, 0, tzinfo=NEW_YORK)


def test_inside_the_window_a_moment_is_kept() -> None:
    tuesday_ten = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert BUSINESS_HOURS.contains(tuesday_ten, NEW_YORK)


def test_quiet_hours_narrow_an_always_window_for_sms() -> None:
    window = LocalWindow.of(SendingWindow(always=True), quiet_hours=True)
    late = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 22:00 in New York
    assert window.next_open(late, NEW_YORK).astimezone(NEW_YORK).time() == time(8, 0)


def test_slots_respect_daily_capacity_and_spacing_per_sender() -> None:
    slotter = Slotter(BUSINESS_HOURS, gap_seconds=120, jitter_seconds=0, booked=lambda *_: 0)
    sender = SenderCapacity(1, daily_limit=2, tz=NEW_YORK)
    monday = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 09:00 local
    slots = [slotter.slot(sender, monday, NEW_YORK, str(i)).astimezone(NEW_YORK) for i in range(3)]
    assert [slot.strftime("%a %H:%M") for slot in slots] == ["Mon 09:00", "Mon 09:02", "Tue 09:00"]


def test_capacity_already_booked_elsewhere_is_subtracted() -> None:
    slotter = Slotter(
        BUSINESS_HOURS,
        gap_seconds=0,
        jitter_seconds=0,
        booked=lambda sender, start, end: 5 if start.astimezone(NEW_YORK).weekday() == 0 else 0,
    )
    sender = SenderCapacity(1, daily_limit=5, tz=NEW_YORK)
    monday = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert slotter.slot(sender, monday, NEW_YORK, "x").astimezone(NEW_YORK).weekday() == 1


def test_jitter_is_deterministic_and_bounded() -> None:
    assert jitter("exec-1", 60) == jitter("exec-1", 60)
    assert 0 <= jitter("exec-2", 60) < 60
    assert jitter("exec-3", 0) == 0


def test_a_warming_up_senders_capacity_grows_day_by_day_in_its_own_time_zone() -> None:
    ramp = WarmupRamp(start=1, increment=1, ceiling=3, began_on=date(2026, 11, 30))
    slotter = Slotter(BUSINESS_HOURS, gap_seconds=0, jitter_seconds=0, booked=lambda *_: 0)
    sender = SenderCapacity(1, daily_limit=1, tz=NEW_YORK, ramp=ramp)
    monday = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 09:00 local, the ramp's first day
    days = [slotter.slot(sender, monday, NEW_YORK, str(i)).astimezone(NEW_YORK).strftime("%a") for i in range(6)]
    assert days == ["Mon", "Tue", "Tue", "Wed", "Wed", "Wed"]
