"""Enrollment at launch: dedupe, filters and sender rotation, set-based in SQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select, update

from db.engine import unit_of_work
from db.enrollment import enroll
from db.models import Campaign, Enrollment, Sender
from tests.conftest import Database
from tests.support import EMAIL_STEP, campaign_spec, people, seed


def test_contacts_are_spread_over_the_sender_pool_in_proportion_to_daily_capacity(db: Database) -> None:
    now = datetime.now(UTC)
    spec = campaign_spec([EMAIL_STEP], senders={"email": ["small@outbound.example", "big@outbound.example"]})
    campaign_id = seed(db.sessions, spec, {"A": people("a", 40)}, daily_limit=10)
    with unit_of_work(db.sessions) as session:
        session.execute(update(Sender).where(Sender.address == "big@outbound.example").values(daily_limit=30))
    with unit_of_work(db.sessions) as session:
        counts = enroll(session, session.get_one(Campaign, campaign_id), now)
    with db.sessions() as session:
        assigned = Counter(session.scalars(select(Enrollment.email_sender_id)))
    assert counts.enrolled == 40
    assert sorted(assigned.values()) == [10, 30]


def test_enrolling_twice_changes_nothing(db: Database) -> None:
    campaign_id = seed(db.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 5)})
    now = datetime.now(UTC)
    with unit_of_work(db.sessions) as session:
        first = enroll(session, session.get_one(Campaign, campaign_id), now)
    with unit_of_work(db.sessions) as session:
        second = enroll(session, session.get_one(Campaign, campaign_id), now)
    assert first.enrolled == second.enrolled == 5
