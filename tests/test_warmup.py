"""Warmup ramps: the pure limit function, the daily reset on SQLite and PostgreSQL, and
`outbound senders warmup` / `senders list` as a user runs them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner, Result

from db.contacts_repo import add_sender
from db.engine import unit_of_work
from db.models import Sender
from db.warmup import reset_day
from domain.warmup import WarmupRamp, validate_ramp
from starter import cli_warmup
from starter.cli_contacts import senders_app
from tests.conftest import Database

pytestmark = pytest.mark.timeout(60)

DAY0 = date(2026, 12, 1)
RAMP = WarmupRamp(start=10, increment=5, ceiling=50, began_on=DAY0)


# --- the ramp ----------------------------------------------------------------------------


def test_a_new_mailbox_climbs_by_the_increment_each_day_up_to_the_ceiling() -> None:
    limits = [RAMP.limit_on(DAY0 + timedelta(days=n)) for n in range(11)]
    assert limits == [10, 15, 20, 25, 30, 35, 40, 45, 50, 50, 50]
    assert RAMP.ceiling_reached_on() == DAY0 + timedelta(days=8)
    assert RAMP.limit_on(DAY0 + timedelta(days=400)) == 50


def test_the_limit_depends_only_on_the_day_so_late_or_repeated_runs_agree() -> None:
    day = DAY0 + timedelta(days=3)
    assert {RAMP.limit_on(day) for _ in range(3)} == {25}
    # A run after three days of downtime lands where three punctual runs would have.
    assert RAMP.limit_on(DAY0 + timedelta(days=6)) == 40


def test_days_before_the_ramp_begins_get_the_starting_limit() -> None:
    assert RAMP.limit_on(DAY0 - timedelta(days=5)) == 10


def test_a_ramp_whose_step_overshoots_stops_at_the_ceiling() -> None:
    ramp = WarmupRamp(start=10, increment=7, ceiling=30, began_on=DAY0)
    assert [ramp.limit_on(DAY0 + timedelta(days=n)) for n in range(5)] == [10, 17, 24, 30, 30]
    assert ramp.ceiling_reached_on() == DAY0 + timedelta(days=3)


@pytest.mark.parametrize(
    ("start", "increment", "ceiling", "problem"),
    [
        (0, 5, 50, "--start must be at least 1"),
        (10, 0, 50, "--increment must be at least 1"),
        (10, 5, 9, "--ceiling must be at least --start (10), got 9"),
        (10, 5, 5_000_000, "--ceiling must be at most 1,000,000"),
    ],
)
def test_bad_ramps_are_refused_with_the_option_named(start: int, increment: int, ceiling: int, problem: str) -> None:
    assert any(problem in message for message in validate_ramp(start, increment, ceiling))
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        WarmupRamp(start=start, increment=increment, ceiling=ceiling, began_on=DAY0)


# --- the daily reset in the database ------------------------------------------------------


def _sender(db: Database, address: str, timezone: str = "UTC", **values: object) -> int:
    with unit_of_work(db.sessions) as session:
        sender = add_sender(session, "email", address, "outbox", 200, timezone, datetime.now(UTC))
        for name, value in values.items():
            setattr(sender, name, value)
        return sender.id


def _row(db: Database, sender_id: int) -> Sender:
    with db.sessions() as session:
        return session.get_one(Sender, sender_id)


def test_the_reset_moves_ramps_along_and_restarts_finished_days(db: Database) -> None:
    moment = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)  # day 3 of the ramp in UTC
    ramped = _sender(
        db,
        "new@outbound.example",
        sends_today=9,
        quota_day=date(2026, 12, 3),
        daily_limit=20,
        warmup_start=10,
        warmup_increment=5,
        warmup_ceiling=50,
        warmup_began_on=DAY0,
    )
    plain = _sender(db, "old@outbound.example", sends_today=150, quota_day=date(2026, 12, 3))
    # 00:00 UTC is still 3 December in New York: that mailbox's day is not over yet.
    western = _sender(
        db, "ny@outbound.example", "America/New_York", sends_today=40, quota_day=date(2026, 12, 3), daily_limit=77
    )
    with unit_of_work(db.sessions) as session:
        first = reset_day(session, moment)
    assert (first.senders, first.counters_reset, first.limits_changed, first.warming_up) == (3, 2, 1, 1)
    new, old, ny = _row(db, ramped), _row(db, plain), _row(db, western)
    assert (new.daily_limit, new.sends_today, new.quota_day) == (25, 0, date(2026, 12, 4))
    assert (old.daily_limit, old.sends_today, old.quota_day) == (200, 0, date(2026, 12, 4))
    assert (ny.daily_limit, ny.sends_today, ny.quota_day) == (77, 40, date(2026, 12, 3))

    # A repeated run (a manual trigger, a retry) and a late one the same day change nothing.
    with unit_of_work(db.sessions) as session:
        again = reset_day(session, moment + timedelta(hours=3))
    assert (again.counters_reset, again.limits_changed) == (0, 0)
    assert _row(db, ramped).daily_limit == 25


def test_a_send_claimed_today_is_not_forgotten_by_a_late_reset(db: Database) -> None:
    today = date(2026, 12, 4)
    sender = _sender(db, "busy@outbound.example", sends_today=3, quota_day=today)
    with unit_of_work(db.sessions) as session:
        reset_day(session, datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
    assert _row(db, sender).sends_today == 3


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    return _app(db, monkeypatch)


def _app(db: Database, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("OUTBOUND_DATABASE_URL", db.url)
    monkeypatch.setenv("COLUMNS", "250")
    assert cli_warmup.senders_warmup  # registers `senders warmup` on the senders app
    root = typer.Typer()
    root.add_typer(senders_app, name="senders")
    return root


def _run(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, ["senders", *args])


def test_senders_warmup_sets_the_ramp_and_todays_limit(cli: typer.Typer, db: Database) -> None:
    sender = _sender(db, "sales@outbound.example")
    began = (datetime.now(UTC) - timedelta(days=2)).date()
    args = ("warmup", "Sales@Outbound.example", "--channel", "email", "--start", "10", "--increment", "5")
    done = _run(cli, *args, "--ceiling", "50", "--begin", began.isoformat())
    assert done.exit_code == 0, done.output
    assert "today's limit: 20" in done.output
    assert f"reaching 50 on {(began + timedelta(days=8)).isoformat()}" in done.output
    row = _row(db, sender)
    assert (row.warmup_start, row.warmup_increment, row.warmup_ceiling, row.warmup_began_on) == (10, 5, 50, began)
    assert row.daily_limit == 20

    listed = _run(cli, "list")
    assert f"10 +5/day up to 50, from {began.isoformat()}; today 20" in listed.output

    off = _run(cli, "warmup", "sales@outbound.example", "--off")
    assert off.exit_code == 0, off.output
    assert "warmup off; the daily limit stays 20" in off.output
    row = _row(db, sender)
    assert (row.warmup_start, row.warmup_began_on, row.daily_limit) == (None, None, 20)


def test_senders_warmup_defaults_to_today_in_the_senders_time_zone(cli: typer.Typer, db: Database) -> None:
    _sender(db, "tokyo@outbound.example", "Asia/Tokyo")
    done = _run(cli, "warmup", "tokyo@outbound.example", "--start", "5", "--increment", "5", "--ceiling", "40")
    assert done.exit_code == 0, done.output
    with db.sessions() as session:
        row = session.scalars(select(Sender).where(Sender.address == "tokyo@outbound.example")).one()
    assert row.warmup_began_on == datetime.now(ZoneInfo("Asia/Tokyo")).date()
    assert row.daily_limit == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--start", "0", "--increment", "5", "--ceiling", "50"), "--start must be at least 1"),
        (("--start", "10", "--increment", "5", "--ceiling", "5"), "--ceiling must be at least --start (10), got 5"),
        (("--start", "10", "--increment", "0", "--ceiling", "50"), "--increment must be at least 1"),
        (("--start", "10", "--ceiling", "50"), "give --start, --increment and --ceiling"),
        (("--off", "--start", "10"), "--off takes no --start"),
        (("--start", "1", "--increment", "1", "--ceiling", "9", "--begin", "12/01/2026"), "is not a date"),
    ],
)
def test_senders_warmup_refuses_bad_input_and_writes_nothing(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    db = sqlite_db  # option checks do not depend on the database
    cli = _app(db, monkeypatch)
    sender = _sender(db, "sales@outbound.example")
    done = _run(cli, "warmup", "sales@outbound.example", *args)
    assert done.exit_code != 0
    assert isinstance(done.exception, Exception)
    assert message in str(done.exception)
    row = _row(db, sender)
    assert (row.warmup_start, row.daily_limit) == (None, 200)


def test_senders_warmup_names_an_unknown_sender(cli: typer.Typer, db: Database) -> None:
    done = _run(cli, "warmup", "nobody@outbound.example", "--start", "1", "--increment", "1", "--ceiling", "2")
    assert "no email sender 'nobody@outbound.example'" in str(done.exception)
