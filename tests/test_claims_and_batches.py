"""Claims that survive their own retry (R18), lifecycle batches that never block a send and
resume after a crash (R20), and a retry that holds its row (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

import db.lifecycle_batches as batches
from activities.campaign import CampaignActivities
from db.engine import single_statements, unit_of_work
from db.lifecycle_batches import Progress, cancel_open_rows, reslot_open_rows
from db.models import Campaign, DeadLetter, StepExecution
from db.planning import fetch_due, plan_step
from db.sending import claim_retry, dead_letter, release_attempt
from schemas.activity_io import LifecycleInput
from schemas.enums import CampaignStatus
from tests.conftest import Database
from tests.support import EMAIL_STEP
from tests.test_step_planning import NOW, SMS_AFTER_AN_HOUR, launched, rows, set_rows


def plan(db: Database, step_id: int) -> None:
    with unit_of_work(db.sessions) as session:
        plan_step(session, step_id, NOW)


def fetch(db: Database, step_id: int, token: str | None, *, now: datetime = NOW, limit: int = 3) -> list[int]:
    with unit_of_work(db.sessions) as session:
        return fetch_due(session, step_id, now, limit, 60, [], token).execution_ids


def test_a_retried_fetch_gets_the_rows_its_first_attempt_claimed(db: Database) -> None:
    (email,) = launched(db, 8, [EMAIL_STEP])
    plan(db, email)
    first = fetch(db, email, "run-a:1")
    assert len(first) == 3
    # The worker died while the first attempt committed; the retry carries the same token.
    assert fetch(db, email, "run-a:1") == first, "the same rows, not three more"
    second = fetch(db, email, "run-a:2")
    assert set(second).isdisjoint(first), "the next fetch claims other rows"
    assert {r.claim_token for r in rows(db, email) if r.id in first} == {"run-a:1"}


def test_a_claim_nobody_heard_of_is_offered_again_within_about_a_minute(db: Database) -> None:
    (email,) = launched(db, 3, [EMAIL_STEP])
    plan(db, email)
    lost = fetch(db, email, "run-a:1")  # a run that was terminated right after
    assert fetch(db, email, "run-b:1", now=NOW + timedelta(seconds=30)) == []
    assert sorted(fetch(db, email, "run-b:2", now=NOW + timedelta(seconds=61))) == sorted(lost)


def test_a_fetch_never_hands_out_a_row_that_closed_after_it_was_read(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel batch that lands between the fetch's read and its write wins."""
    import db.planning as planning

    (email,) = launched(db, 3, [EMAIL_STEP])
    plan(db, email)
    read = planning._due_rows

    def read_then_cancel(session: Session, *args: object) -> tuple[list[planning.DueRow], list[planning.DueRow]]:
        waiting, retrying = read(session, *args)  # type: ignore[arg-type]
        session.execute(update(StepExecution).where(StepExecution.id == waiting[0].id).values(status="CANCELLED"))
        return waiting, retrying

    monkeypatch.setattr(planning, "_due_rows", read_then_cancel)
    handed = fetch(db, email, "run-a:1")
    assert len(handed) == 2
    assert sorted(r.status for r in rows(db, email)) == ["CANCELLED", "QUEUED", "QUEUED"]


def test_a_retry_holds_its_row_so_no_second_attempt_sends_beside_it(db: Database) -> None:
    (email,) = launched(db, 1, [EMAIL_STEP])
    plan(db, email)
    (row,) = rows(db, email)
    set_rows(db, [row.id], status="SENDING", attempts=1, lease_until=NOW + timedelta(seconds=60))
    with single_statements(db.engine) as statements:
        busy = claim_retry(statements, row.id, NOW, NOW + timedelta(seconds=60))
        assert (busy.attempt, busy.busy_until) == (None, NOW + timedelta(seconds=60)), "the first attempt still runs"
        release_attempt(statements, row.id)  # it failed and let go
        taken = claim_retry(statements, row.id, NOW, NOW + timedelta(seconds=60))
        assert taken.attempt == 2, "the retry counts itself on the row"
    set_rows(db, [row.id], status="SENT")
    with single_statements(db.engine) as statements:
        assert claim_retry(statements, row.id, NOW, NOW).closed == "SENT"


def test_a_dead_letter_keeps_the_real_attempt_count_and_why_retries_stopped(db: Database) -> None:
    (email,) = launched(db, 2, [EMAIL_STEP])
    plan(db, email)
    first, second = (r.id for r in rows(db, email))
    set_rows(db, [first], status="SENDING", attempts=7)
    with unit_of_work(db.sessions) as session:
        assert dead_letter(session, first, "ProviderTransient", "503", 0, NOW, retry_state="NON_RETRYABLE_FAILURE") == 7
        assert dead_letter(session, second, "TemplateError", "x", 0, NOW, retry_state="NON_RETRYABLE_FAILURE") == 1
    with db.sessions() as session:
        letters = {letter.execution_id: letter for letter in session.scalars(select(DeadLetter))}
    assert (letters[first].attempts, letters[first].retry_state) == (7, "NON_RETRYABLE_FAILURE")
    assert letters[second].attempts == 1, "an attempt that never reached the gate still counts once"


def _campaign_of(db: Database, step_id: int) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(StepExecution.campaign_id).where(StepExecution.step_id == step_id)) or 0)


def _status_counts(db: Database, campaign_id: int) -> dict[tuple[int, str], int]:
    with db.sessions() as session:
        found = session.execute(
            select(StepExecution.step_id, StepExecution.status, func.count())
            .where(StepExecution.campaign_id == campaign_id)
            .group_by(StepExecution.step_id, StepExecution.status)
        ).all()
    return {(step, status): count for step, status, count in found}


def test_the_gate_closes_in_its_own_small_write_before_any_row_is_touched(db: Database) -> None:
    email, _sms = launched(db, 5, [EMAIL_STEP, SMS_AFTER_AN_HOUR])
    plan(db, email)
    campaign = _campaign_of(db, email)
    CampaignActivities(db.sessions).apply_lifecycle(
        LifecycleInput(campaign_id=campaign, state=CampaignStatus.CANCELLED, version=2, now=NOW, gate_only=True)
    )
    with db.sessions() as session:
        assert session.get_one(Campaign, campaign).status == "CANCELLED"
    assert _status_counts(db, campaign) == {(email, "SCHEDULED"): 5}, "the rows wait for the batches"


def test_cancel_batches_close_every_row_and_pair_and_resume_after_a_crash(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches, "BATCH", 3)
    email, sms = launched(db, 10, [EMAIL_STEP, SMS_AFTER_AN_HOUR])
    plan(db, email)
    campaign = _campaign_of(db, email)
    ids = [r.id for r in rows(db, email)]
    set_rows(db, ids[:2], status="SENT")
    set_rows(db, ids[2:3], status="SENDING")  # passed the gate before it closed: left to its send
    set_rows(db, ids[3:5], status="QUEUED", lease_until=NOW)

    beats: list[list[object]] = []

    def crash_on_the_third_beat(progress: Progress) -> None:
        beats.append(progress.as_details())
        if len(beats) == 3:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        cancel_open_rows(db.sessions, campaign, NOW, Progress(), crash_on_the_third_beat)
    resumed = Progress.from_details(beats[-1])
    cancel_open_rows(db.sessions, campaign, NOW, resumed, lambda progress: None)

    assert _status_counts(db, campaign) == {
        (email, "SENT"): 2,
        (email, "SENDING"): 1,
        (email, "CANCELLED"): 7,
        (sms, "CANCELLED"): 10,
    }
    assert (resumed.rows, resumed.unplanned) == (7, 10)


def test_resume_batches_move_each_waiting_row_once_by_the_paused_time(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches, "BATCH", 4)
    (email,) = launched(db, 9, [EMAIL_STEP])
    plan(db, email)
    campaign = _campaign_of(db, email)
    paused_at, resumed_at = NOW + timedelta(hours=1), NOW + timedelta(hours=3)
    before = {r.id: r.scheduled_for for r in rows(db, email)}
    set_rows(db, list(before), updated_at=NOW)
    with unit_of_work(db.sessions) as session:
        session.execute(update(Campaign).where(Campaign.id == campaign).values(status="ACTIVE"))

    for _ in range(2):  # the activity retried after finishing: nothing moves twice
        reslot_open_rows(db.sessions, campaign, paused_at, resumed_at, Progress(), lambda progress: None)

    after = {r.id: r.scheduled_for for r in rows(db, email)}
    for row_id, old in before.items():
        assert old is not None
        assert after[row_id] == max(resumed_at, old + (resumed_at - paused_at))


def test_a_step_with_many_more_rows_than_one_batch_is_re_slotted_to_the_end(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only sweeps that find every row locked are limited, not the number of batches (a
    million-row step needs hundreds of them)."""
    monkeypatch.setattr(batches, "BATCH", 2)
    monkeypatch.setattr(batches, "MAX_LOCKED_SWEEPS", 2)
    (email,) = launched(db, 11, [EMAIL_STEP])
    plan(db, email)
    campaign = _campaign_of(db, email)
    set_rows(db, [r.id for r in rows(db, email)], updated_at=NOW)
    resumed_at = NOW + timedelta(hours=3)

    progress = Progress()
    reslot_open_rows(db.sessions, campaign, NOW + timedelta(hours=1), resumed_at, progress, lambda progress: None)

    assert progress.rows == 11
    assert all(r.scheduled_for is not None and r.scheduled_for >= resumed_at for r in rows(db, email))


def _pause_and_resume(db: Database, campaign: int, paused_at: datetime, resumed_at: datetime) -> None:
    """The gate writes of a pause and of its resume, as the campaign workflow commits them."""
    activities = CampaignActivities(db.sessions)
    activities.apply_lifecycle(
        LifecycleInput(campaign_id=campaign, state=CampaignStatus.PAUSED, version=2, now=paused_at, gate_only=True)
    )
    activities.apply_lifecycle(
        LifecycleInput(
            campaign_id=campaign,
            state=CampaignStatus.ACTIVE,
            version=3,
            now=resumed_at,
            paused_at=paused_at,
            gate_only=True,
        )
    )


def test_while_a_resume_re_slots_a_row_is_due_once_its_slot_plus_the_paused_time_has_passed(db: Database) -> None:
    """Sending resumes before the batches have moved every row, and no row goes out before
    the slot the batches will give it."""
    (email,) = launched(db, 6, [EMAIL_STEP])
    plan(db, email)
    campaign = _campaign_of(db, email)
    ids = sorted(r.id for r in rows(db, email))
    paused_at, resumed_at = NOW + timedelta(hours=1), NOW + timedelta(hours=3)  # paused two hours
    set_rows(db, ids[:2], scheduled_for=NOW - timedelta(hours=3), updated_at=NOW)  # moved: an hour ago
    set_rows(db, ids[2:4], scheduled_for=NOW + timedelta(hours=2), updated_at=NOW)  # moved: in an hour
    set_rows(db, ids[4:], scheduled_for=NOW + timedelta(hours=5), updated_at=NOW)
    _pause_and_resume(db, campaign, paused_at, resumed_at)

    with db.sessions() as session:
        marked = session.get_one(Campaign, campaign)
        assert (marked.reslot_from, marked.reslot_seconds) == (resumed_at, 7200.0)
    assert sorted(fetch(db, email, "run-a:1", now=resumed_at, limit=10)) == ids[:2], "not the rows due in an hour"
    with unit_of_work(db.sessions) as session:
        summary = fetch_due(session, email, resumed_at, 0, 60, [], "run-a:2")
    assert summary.next_due is not None
    assert summary.next_due <= resumed_at + timedelta(seconds=5), "looks again soon"

    set_rows(db, ids[:2], status="SENT")
    reslot_open_rows(db.sessions, campaign, paused_at, resumed_at, Progress(), lambda progress: None)

    with db.sessions() as session:
        cleared = session.get_one(Campaign, campaign)
        assert (cleared.reslot_from, cleared.reslot_seconds) == (None, None), "every row moved: the mark is gone"
    in_an_hour = resumed_at + timedelta(hours=1)
    assert fetch(db, email, "run-a:3", now=in_an_hour - timedelta(seconds=1), limit=10) == []
    assert sorted(fetch(db, email, "run-a:4", now=in_an_hour, limit=10)) == ids[2:4]
