"""The follow-up processor: which contacts it finds (SQLite and PostgreSQL), and on the
time-skipping server, that a step workflow gone missing is restarted by its campaign and
sends the late contacts exactly once, and that a campaign whose workflow was terminated
gets its gate closed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from temporalio.testing import WorkflowEnvironment

from db.engine import unit_of_work
from db.enrollment import enroll, schedule_steps
from db.follow_up import due_steps
from db.models import Campaign, Contact, Sender, Step, StepExecution
from runtime.names import campaign_queue
from schemas.enums import CampaignStatus, ExecutionStatus
from schemas.maintenance_io import FollowUpInput, FollowUpResult
from tests.conftest import Database
from tests.support import EMAIL_STEP, Outbound, campaign_spec, people, seed, start_of_a_day
from workflows.maintenance import FollowUpWorkflow

pytestmark = pytest.mark.timeout(120)

SMS_AFTER_30_MINUTES = {"channel": "sms", "body": "Hi {{ first_name }}, quick follow-up", "wait": "30m"}
SMS_AFTER_A_DAY = {"channel": "sms", "body": "Hi {{ first_name }}, quick follow-up", "wait": "1d"}


# --- what the processor finds -------------------------------------------------------------


def _active_campaign(db: Database, now: datetime) -> tuple[int, dict[str, int], list[int]]:
    """A launched two-step campaign (email, then SMS a day later) started three days ago,
    enrolled but with no rows yet: contact ids by email, step ids by position."""
    campaign_id = seed(db.sessions, campaign_spec([EMAIL_STEP, SMS_AFTER_A_DAY]), {"A": people("f", 5)})
    with unit_of_work(db.sessions) as session:
        campaign = session.get_one(Campaign, campaign_id)
        enroll(session, campaign, now - timedelta(days=3))
        schedule_steps(session, campaign, now - timedelta(days=3))
        campaign.status = CampaignStatus.ACTIVE.value
    with db.sessions() as session:
        contacts = {email: contact_id for email, contact_id in session.execute(select(Contact.email, Contact.id))}
        steps = list(session.scalars(select(Step.id).where(Step.campaign_id == campaign_id).order_by(Step.position)))
    return campaign_id, {email: contacts[email] for email in contacts if email}, steps


def _rows(db: Database, campaign_id: int, step_id: int, rows: dict[int, tuple[str, datetime]]) -> None:
    """Execution rows: contact -> (status, sent_at or scheduled_for)."""
    with unit_of_work(db.sessions) as session:
        sender = session.scalars(select(Sender.id)).first()
        for contact_id, (status, moment) in rows.items():
            session.add(
                StepExecution(
                    campaign_id=campaign_id,
                    step_id=step_id,
                    contact_id=contact_id,
                    sender_id=sender,
                    status=status,
                    sent_at=moment if status == ExecutionStatus.SENT.value else None,
                    scheduled_for=moment,
                    updated_at=moment,
                )
            )


def test_it_finds_contacts_due_for_a_step_with_no_row_and_rows_left_behind(db: Database) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    campaign_id, contact, (first, second) = _active_campaign(db, now)
    _rows(
        db,
        campaign_id,
        first,
        {
            contact["f0@example.com"]: ("SENT", now - timedelta(days=2)),  # due for step 2, no row: found
            contact["f1@example.com"]: ("SENT", now - timedelta(hours=2)),  # its wait is not over yet
            contact["f2@example.com"]: ("SCHEDULED", now + timedelta(hours=1)),  # step 1 not done yet
            contact["f3@example.com"]: ("SENT", now - timedelta(days=2)),  # has its step 2 row below
            contact["f4@example.com"]: ("SCHEDULED", now - timedelta(hours=2)),  # left behind in step 1
        },
    )
    _rows(db, campaign_id, second, {contact["f3@example.com"]: ("SENT", now - timedelta(hours=20))})
    with db.sessions() as session:
        page = due_steps(session, now)
    found = {(step.position, step.unplanned, step.stalled) for step in page.steps}
    assert found == {(1, 0, 1), (2, 1, 0)}
    assert page.more is False

    with db.sessions() as session:  # paged: one step per page, the cursor moves on
        one = due_steps(session, now, limit=1)
        two = due_steps(session, now, after_step_id=one.last_step_id, limit=1)
    assert (one.more, [s.position for s in one.steps], [s.position for s in two.steps]) == (True, [1], [2])


@pytest.mark.parametrize("status", [CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.CANCELLED])
def test_campaigns_that_are_not_active_are_left_alone(db: Database, status: CampaignStatus) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    campaign_id, contact, (first, _second) = _active_campaign(db, now)
    _rows(db, campaign_id, first, {contact["f0@example.com"]: ("SENT", now - timedelta(days=2))})
    with unit_of_work(db.sessions) as session:
        session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=status.value))
    with db.sessions() as session:
        assert due_steps(session, now).steps == []


def test_steps_that_have_not_started_or_have_finished_are_left_alone(db: Database) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    campaign_id, contact, (first, second) = _active_campaign(db, now)
    _rows(db, campaign_id, first, {contact["f0@example.com"]: ("SENT", now - timedelta(days=2))})
    with unit_of_work(db.sessions) as session:
        session.execute(update(Step).where(Step.id == first).values(finished_at=now))
        session.execute(update(Step).where(Step.id == second).values(start_at=now + timedelta(hours=1)))
    with db.sessions() as session:
        assert due_steps(session, now).steps == []


# --- the processor against running campaigns ----------------------------------------------


async def _follow_up(outbound: Outbound) -> FollowUpResult:
    """One run of the processor, as the schedule starts it."""
    return await outbound.client.execute_workflow(
        FollowUpWorkflow.run,
        FollowUpInput(),
        id=f"{outbound.prefix}follow-up-{uuid.uuid4().hex[:6]}",
        task_queue=campaign_queue(outbound.prefix),
        result_type=FollowUpResult,
    )


async def test_a_missing_step_workflow_is_restarted_and_sends_the_late_contacts_once(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    spec = campaign_spec([EMAIL_STEP, SMS_AFTER_30_MINUTES])
    campaign = seed(outbound.sessions, spec, {"A": people("a", 3)}, daily_limit=2)
    with unit_of_work(outbound.sessions) as session:  # only the mailbox is short of quota
        session.execute(update(Sender).where(Sender.channel != "email").values(daily_limit=100))
    await start_of_a_day(workflow_env)  # the mailbox's day must not end in the hour below
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        # Two emails go out, the third waits for the mailbox's next day; the SMS step sends
        # the first two 30 minutes later and then waits for the third contact.
        await workflow_env.sleep(timedelta(hours=1))
        assert len(outbound.files("sms")) == 2
        await outbound.step_handle(campaign, 2).terminate(reason="test: the step workflow is lost")
        await workflow_env.sleep(timedelta(hours=25))  # past the mailbox's midnight: email 3 is sent
        assert (len(outbound.files("email")), len(outbound.files("sms"))) == (3, 2)

        first = await _follow_up(outbound)
        second = await _follow_up(outbound)  # the restarted step is running (or done): nothing more
        progress = await handle.result()
        after = await _follow_up(outbound)

    assert (first.due_steps, first.restarted, first.gates_closed) == (1, 1, 0)
    assert second.restarted == 0
    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert outbound.counts(campaign) == {(1, "SENT"): 3, (2, "SENT"): 3}
    recipients = [path.stem for path in outbound.files("sms")]
    assert len(recipients) == len(set(recipients)) == 3
    assert (after.due_steps, after.restarted, after.campaigns_checked) == (0, 0, 0)


async def test_the_reconcile_pass_closes_the_gate_of_a_terminated_campaign(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP, SMS_AFTER_A_DAY]), {"A": people("r", 2)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await workflow_env.sleep(timedelta(hours=6))  # email sent; the campaign sleeps until step 2
        await handle.terminate(reason="test: an operator terminated the campaign")
        result = await _follow_up(outbound)
        again = await _follow_up(outbound)

    assert (result.campaigns_checked, result.gates_closed) == (1, 1)
    assert (again.campaigns_checked, again.gates_closed) == (0, 0)
    with outbound.sessions() as session:
        assert session.get_one(Campaign, campaign).status == CampaignStatus.CANCELLED.value
    assert outbound.counts(campaign) == {(1, "SENT"): 2, (2, "CANCELLED"): 2}
    assert outbound.files("sms") == []
