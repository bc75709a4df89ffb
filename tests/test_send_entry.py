"""The way into SENDING: quota claim first, then the gate, each committed by itself.

Checked on SQLite and PostgreSQL (where claim and gate are one statement): a refused gate
gives the claim back, a used-up day leaves the row untouched, and the claim never
exceeds the sender's daily limit.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update

from activities.campaign import CampaignActivities
from db.engine import Statements, engine_of, single_statements, unit_of_work
from db.models import Campaign, Sender, Step, StepExecution
from db.planning import plan_step
from db.sending import Entry, SendContext, enter_sending, load_context
from schemas.activity_io import PrepareCampaignInput
from tests.conftest import Database
from tests.support import EMAIL_STEP, campaign_spec, people, seed

TODAY = date(2026, 12, 2)
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def planned(db: Database, contacts: int, daily_limit: int) -> tuple[int, list[int]]:
    campaign = seed(db.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", contacts)}, daily_limit=daily_limit)
    CampaignActivities(db.sessions).prepare_campaign(
        PrepareCampaignInput(campaign_id=campaign, now=NOW, start_at=NOW, version=1)
    )
    with unit_of_work(db.sessions) as session:
        step = session.scalars(select(Step.id).where(Step.campaign_id == campaign)).one()
        plan_step(session, step, NOW)
        ids = list(session.scalars(select(StepExecution.id).where(StepExecution.step_id == step)))
    return campaign, sorted(ids)


def enter(db: Database, execution_id: int) -> tuple[Entry, SendContext]:
    with single_statements(engine_of(db.sessions)) as statements:
        context = load_context(statements, execution_id)
        assert context is not None
        return enter_sending(statements, context, f"<key-{execution_id}>", TODAY, NOW), context


def state(db: Database, execution_id: int) -> tuple[str, int]:
    with db.sessions() as session:
        row = session.get_one(StepExecution, execution_id)
        sends_today = session.scalars(select(Sender.sends_today).where(Sender.id == row.sender_id)).one()
        return row.status, sends_today


def test_an_open_gate_takes_one_send_of_the_quota_and_moves_the_row_to_sending(db: Database) -> None:
    _, ids = planned(db, 2, daily_limit=5)
    entry, _ = enter(db, ids[0])
    assert entry is Entry.SENDING
    assert state(db, ids[0]) == ("SENDING", 1)


def test_a_closed_gate_gives_the_claim_back_and_leaves_the_row_alone(db: Database) -> None:
    campaign, ids = planned(db, 2, daily_limit=5)
    assert enter(db, ids[0])[0] is Entry.SENDING
    with unit_of_work(db.sessions) as session:
        session.execute(update(Campaign).where(Campaign.id == campaign).values(status="PAUSED"))
    entry, _ = enter(db, ids[1])
    assert entry is Entry.GATE_CLOSED
    assert state(db, ids[1]) == ("SCHEDULED", 1), "the paused send claimed nothing"


def test_a_used_up_day_refuses_without_touching_the_row_and_never_exceeds_the_limit(db: Database) -> None:
    _, ids = planned(db, 4, daily_limit=2)
    entries = [enter(db, execution_id)[0] for execution_id in ids]
    assert entries == [Entry.SENDING, Entry.SENDING, Entry.NO_QUOTA, Entry.NO_QUOTA]
    assert state(db, ids[3]) == ("SCHEDULED", 2)


# A ramp of 10, 15, 20 … up to 50; the stored `daily_limit` still says 10, as it does
# before the daily reset has reached the sender's new day.
RAMP = {"warmup_start": 10, "warmup_increment": 5, "warmup_ceiling": 50}
DECEMBER, HALLOWEEN = date(2026, 12, 1), date(2026, 10, 31)


@pytest.mark.parametrize(
    ("timezone", "began", "moment", "day", "limit"),
    [
        # 00:30 on 2 December in New York is 05:30 UTC: day 2 of the ramp has begun there.
        ("America/New_York", DECEMBER, datetime(2026, 12, 2, 5, 30, tzinfo=UTC), date(2026, 12, 2), 15),
        # 23:30 on 1 December in New York is already 2 December in UTC: still day 1 there.
        ("America/New_York", DECEMBER, datetime(2026, 12, 2, 4, 30, tzinfo=UTC), date(2026, 12, 1), 10),
        # 00:30 on 3 December in Tokyo is 15:30 UTC on 2 December: Tokyo is on day 3.
        ("Asia/Tokyo", DECEMBER, datetime(2026, 12, 2, 15, 30, tzinfo=UTC), date(2026, 12, 3), 20),
        # New York falls back on 1 November 2026 (a 25-hour day): 23:30 EST on the 1st is
        # 04:30 UTC on the 2nd, still day 2 of a ramp begun on 31 October; 00:30 EST is day 3.
        ("America/New_York", HALLOWEEN, datetime(2026, 11, 2, 4, 30, tzinfo=UTC), date(2026, 11, 1), 15),
        ("America/New_York", HALLOWEEN, datetime(2026, 11, 2, 5, 30, tzinfo=UTC), date(2026, 11, 2), 20),
    ],
)
def test_a_warming_up_senders_limit_holds_from_midnight_in_its_own_time_zone(
    db: Database, timezone: str, began: date, moment: datetime, day: date, limit: int
) -> None:
    _, ids = planned(db, limit + 1, daily_limit=10)
    with unit_of_work(db.sessions) as session:
        session.execute(update(Sender).values(timezone=timezone, daily_limit=10, warmup_began_on=began, **RAMP))
    with single_statements(engine_of(db.sessions)) as statements:
        context = load_context(statements, ids[0])
        assert context is not None
        assert context.sender.today(moment) == day
        assert context.sender.limit_on(day) == limit
        entries = [
            enter_sending(statements, context_of(statements, execution_id), f"<k-{execution_id}>", day, moment)
            for execution_id in ids
        ]
    assert entries.count(Entry.SENDING) == limit, f"the ramp's limit for {day} in {timezone}"
    assert entries[-1] is Entry.NO_QUOTA


def context_of(statements: Statements, execution_id: int) -> SendContext:
    context = load_context(statements, execution_id)
    assert context is not None
    return context
