"""The way into SENDING: quota claim first, then the gate, each committed by itself.

Checked on SQLite and PostgreSQL (where claim and gate are one statement): a refused gate
gives the claim back, a used-up day leaves the row untouched, and the claim never
exceeds the sender's daily limit.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select, update

from activities.campaign import CampaignActivities
from db.engine import engine_of, single_statements, unit_of_work
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
