"""Planning a step and handing out its due rows, on SQLite and PostgreSQL.

A later step is planned from the previous step's terminal rows, each contact once, page
after page, and replanned from a cursor without missing anyone; due rows leave in slot
order with expired leases among them; the workflow's "anything left open?" is answered
without counting a whole large step.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

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


IMMEDIATE_SMS = {"channel": "sms", "body": "Hi {{ first_name }}", "wait": "0s"}
IMMEDIATE_VOICEMAIL = {"channel": "voicemail", "say": "Hi {{ first_name }}", "wait": "0s"}


class Replanner:
    """Plans one step the way its workflow does: each pass starts from the last one's cursor."""

    def __init__(self, db: Database, step_id: int) -> None:
        self.db, self.step_id, self.cursor = db, step_id, None

    def pass_(self, now: datetime) -> tuple[int, int]:
        with unit_of_work(self.db.sessions) as session:
            result = plan_step(session, self.step_id, now, self.cursor)
        self.cursor = result.cursor
        return result.planned, result.skipped


def test_a_replan_from_the_cursor_finds_everyone_a_full_pass_would(db: Database) -> None:
    """Rows of the previous step turn terminal in every way, move later, and appear after
    the cursor was taken (its own planner still running, slots already due); after every
    incremental pass a full one finds nobody left."""
    randomly = random.Random(7)
    email, sms, voicemail = launched(db, 40, [EMAIL_STEP, IMMEDIATE_SMS, IMMEDIATE_VOICEMAIL])
    plan(db, email)
    second, third = Replanner(db, sms), Replanner(db, voicemail)
    for round_ in range(8):
        now = NOW + timedelta(minutes=10 * (round_ + 1))
        for step_id in (email, sms):
            open_rows = [r for r in rows(db, step_id) if r.status == "SCHEDULED"]
            for row in randomly.sample(open_rows, min(len(open_rows), 4)):
                change = randomly.choice(["sent", "sent", "skipped", "failed", "cancelled", "later"])
                done = now - timedelta(minutes=randomly.randint(1, 9))
                if change == "later":
                    set_rows(db, [row.id], scheduled_for=now + timedelta(minutes=randomly.randint(1, 30)))
                else:
                    set_rows(
                        db, [row.id], status=change.upper(), sent_at=done if change == "sent" else None, updated_at=done
                    )
        third.pass_(now)  # before the SMS planner adds rows: those come after its cursor
        second.pass_(now)
        for step_id in (sms, voicemail):
            assert plan(db, step_id, now) == (0, 0), f"round {round_}: a full pass found someone the replan missed"
    assert rows(db, voicemail), "the third step was planned at all"


def test_a_replan_from_the_cursor_reads_only_what_changed_since(db: Database) -> None:
    email, sms = launched(db, 4, [EMAIL_STEP, IMMEDIATE_SMS])
    plan(db, email)
    first = rows(db, email)
    # All four share one slot (no gap): rows leave it in id order, so the cursor is the
    # lowest open id there and the sent row is behind it.
    assert len({r.scheduled_for for r in first}) == 1
    set_rows(db, [first[0].id], status="SENT", sent_at=NOW, updated_at=NOW)
    replanner = Replanner(db, sms)
    assert replanner.pass_(NOW + timedelta(minutes=1)) == (1, 0)
    with unit_of_work(db.sessions) as session:  # the contact's SMS row disappears behind the cursor
        session.execute(delete(StepExecution).where(StepExecution.step_id == sms))

    assert replanner.pass_(NOW + timedelta(minutes=2)) == (0, 0), "unchanged rows are not read again"
    assert plan(db, sms, NOW + timedelta(minutes=3)) == (1, 0), "a full pass reads every enrollment"


def test_the_cursor_starts_at_the_earliest_open_slot_and_ends_once_the_previous_step_finished(db: Database) -> None:
    email, sms = launched(db, 3, [EMAIL_STEP, IMMEDIATE_SMS])
    plan(db, email)
    first = rows(db, email)
    set_rows(db, [first[0].id], scheduled_for=NOW - timedelta(minutes=5))
    set_rows(db, [first[1].id], status="QUEUED", scheduled_for=NOW - timedelta(minutes=9))
    set_rows(db, [first[2].id], status="SENT", scheduled_for=NOW - timedelta(minutes=30), sent_at=NOW)
    replanner = Replanner(db, sms)
    replanner.pass_(NOW)
    assert replanner.cursor is not None
    assert replanner.cursor.scheduled_from == NOW - timedelta(minutes=9), "a leased row holds the cursor back"
    assert replanner.cursor.from_id == first[1].id
    assert replanner.cursor.after_id == max(r.id for r in first)

    set_rows(db, [r.id for r in first[:2]], status="SENT", sent_at=NOW)
    assert replanner.pass_(NOW + timedelta(minutes=1)) == (2, 0)
    assert replanner.cursor is not None
    assert replanner.cursor.scheduled_from == NOW + timedelta(minutes=1)
    with unit_of_work(db.sessions) as session:
        planning.mark_step_finished(session, email, NOW)
    assert replanner.pass_(NOW + timedelta(minutes=2)) == (0, 0)
    assert replanner.cursor is None, "the previous step finished: nothing left to follow"
