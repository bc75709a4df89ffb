"""Planning a step and handing out its due rows, on SQLite and PostgreSQL.

A later step is planned from the previous step's terminal rows, each contact once, page
after page; due rows leave in slot order with expired leases among them; the workflow's
"anything left open?" is answered without counting a whole large step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

import db.planning as planning
from activities.campaign import CampaignActivities
from db.engine import unit_of_work
from db.models import Step, StepExecution
from db.planning import fetch_due, plan_step
from schemas.activity_io import PrepareCampaignInput
from tests.conftest import Database
from tests.support import EMAIL_STEP, campaign_spec, people, seed

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
SMS_AFTER_AN_HOUR = {"channel": "sms", "body": "Hi {{ first_name }}", "wait": "1h"}


def launched(db: Database, contacts: int, steps: list[dict[str, str]]) -> list[int]:
    campaign = seed(db.sessions, campaign_spec(steps), {"A": people("a", contacts)})
    CampaignActivities(db.sessions).prepare_campaign(
        PrepareCampaignInput(campaign_id=campaign, now=NOW, start_at=NOW, version=1)
    )
    with db.sessions() as session:
        return list(session.scalars(select(Step.id).where(Step.campaign_id == campaign).order_by(Step.position)))


def plan(db: Database, step_id: int, now: datetime = NOW) -> tuple[int, int]:
    with unit_of_work(db.sessions) as session:
        result = plan_step(session, step_id, now)
    return result.planned, result.skipped


def rows(db: Database, step_id: int) -> list[StepExecution]:
    with db.sessions() as session:
        query = select(StepExecution).where(StepExecution.step_id == step_id).order_by(StepExecution.contact_id)
        return list(session.scalars(query))


def set_rows(db: Database, ids: list[int], **values: object) -> None:
    with unit_of_work(db.sessions) as session:
        session.execute(update(StepExecution).where(StepExecution.id.in_(ids)).values(**values))


def test_a_later_step_plans_each_contact_once_when_its_previous_row_is_terminal(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "PAGE", 2)  # several pages, one of them exactly full
    email, sms = launched(db, 7, [EMAIL_STEP, SMS_AFTER_AN_HOUR])
    assert plan(db, email) == (7, 0)
    first = rows(db, email)
    sent_at = NOW + timedelta(minutes=5)
    set_rows(db, [r.id for r in first[:3]], status="SENT", sent_at=sent_at, updated_at=sent_at)
    set_rows(db, [first[3].id], status="SKIPPED", skip_reason="no_address", updated_at=NOW)
    set_rows(db, [first[4].id], status="QUEUED", lease_until=NOW + timedelta(minutes=1))

    assert plan(db, sms, NOW + timedelta(minutes=6)) == (4, 0)
    second = rows(db, sms)
    assert [r.contact_id for r in second] == [r.contact_id for r in first[:4]]
    assert [r.scheduled_for for r in second[:3]] == [sent_at + timedelta(hours=1)] * 3
    assert second[3].scheduled_for == NOW + timedelta(hours=1), "a skipped email does not hold the SMS back"

    assert plan(db, sms, NOW + timedelta(minutes=7)) == (0, 0), "a second pass finds nobody new"
    set_rows(db, [r.id for r in first[4:]], status="SENT", sent_at=sent_at, updated_at=sent_at)
    assert plan(db, sms, NOW + timedelta(minutes=8)) == (3, 0)
    assert len(rows(db, sms)) == 7


def test_due_rows_leave_in_slot_order_with_expired_leases_among_them(db: Database) -> None:
    (email,) = launched(db, 6, [EMAIL_STEP])
    plan(db, email)
    ids = [r.id for r in rows(db, email)]
    at = [NOW - timedelta(minutes=m) for m in (10, 50, 30, 20, 40)] + [NOW + timedelta(minutes=1)]
    for execution_id, when in zip(ids, at, strict=True):
        set_rows(db, [execution_id], scheduled_for=when)
    set_rows(db, [ids[1]], status="QUEUED", lease_until=NOW - timedelta(seconds=1))  # lease ran out
    set_rows(db, [ids[4]], status="QUEUED", lease_until=NOW + timedelta(minutes=5))  # still leased

    with unit_of_work(db.sessions) as session:
        handed = fetch_due(session, email, NOW, limit=3, lease_seconds=60, exclude=[ids[2]])
    assert handed.execution_ids == [ids[1], ids[3], ids[0]], "oldest slot first; in-flight and leased ids kept back"
    with unit_of_work(db.sessions) as session:
        rest = fetch_due(session, email, NOW, limit=10, lease_seconds=60, exclude=[])
    assert rest.execution_ids == [ids[2]], "the future row waits; the handed-out ones are leased now"
    assert rest.next_due == at[5]


def test_open_rows_are_counted_only_as_far_as_the_workflow_needs(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planning, "OPEN_COUNT_CAP", 3)
    (email,) = launched(db, 5, [EMAIL_STEP])
    plan(db, email)
    with unit_of_work(db.sessions) as session:
        assert fetch_due(session, email, NOW, limit=0, lease_seconds=60, exclude=[]).open_rows == 3
    set_rows(db, [r.id for r in rows(db, email)[1:]], status="SENT", sent_at=NOW)
    with unit_of_work(db.sessions) as session:
        assert fetch_due(session, email, NOW, limit=0, lease_seconds=60, exclude=[]).open_rows == 1
    set_rows(db, [r.id for r in rows(db, email)], status="SENT", sent_at=NOW)
    with unit_of_work(db.sessions) as session:
        assert fetch_due(session, email, NOW, limit=0, lease_seconds=60, exclude=[]).open_rows == 0
