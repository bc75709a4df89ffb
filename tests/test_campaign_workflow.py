"""The campaign pipeline on the time-skipping test server: days pass in seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from db.contacts_repo import stop_contact
from db.engine import unit_of_work
from schemas.activity_io import FetchDueResult
from schemas.enums import CampaignStatus, SkipReason
from schemas.signals import PAUSE, RESUME, PauseSignal, ResumeSignal
from schemas.workflow_io import Tuning
from tests.support import (
    EITHER_BATCH_SIZE,
    EMAIL_STEP,
    THREE_STEPS,
    Outbound,
    campaign_spec,
    people,
    save_history,
    seed,
)

pytestmark = pytest.mark.timeout(180)


def acceptance_groups() -> dict[str, list]:
    """Two groups of 30 with 5 contacts in both: 55 distinct people."""
    return {"A": people("a", 30), "B": people("a", 5, start=25) + people("b", 25)}


@EITHER_BATCH_SIZE
async def test_a_three_step_campaign_sends_one_message_per_contact_and_step(outbound: Outbound) -> None:
    spec = campaign_spec(THREE_STEPS, lead_groups=["A", "B"])
    campaign = seed(
        outbound.sessions, spec, acceptance_groups(), suppress=["a0@example.com", "a1@example.com", "b0@example.com"]
    )
    replied = [outbound.contact_id(email) for email in ("a2@example.com", "b1@example.com")]
    with unit_of_work(outbound.sessions) as session:
        for contact_id in replied:
            stop_contact(session, contact_id, SkipReason.REPLIED, datetime.now(UTC))

    async with outbound.worker():
        handle = await outbound.launch(campaign)
        progress = await handle.result()
        await save_history(handle, "normal_run")
        await save_history(outbound.step_handle(campaign, 2), "normal_run_step_2")

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert progress.enrolled == 50
    assert (len(outbound.files("email")), len(outbound.files("sms")), len(outbound.files("voicemail"))) == (50, 50, 50)
    assert outbound.counts(campaign) == {(1, "SENT"): 50, (2, "SENT"): 50, (3, "SENT"): 50}


async def test_steps_start_at_launch_plus_day_plus_cumulative_wait(outbound: Outbound) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 3)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        progress = await handle.result()
    starts = [plan.start_at - progress.start_at for plan in progress.steps]
    assert starts == [timedelta(0), timedelta(days=1), timedelta(days=3)]


@EITHER_BATCH_SIZE
async def test_pausing_for_a_day_between_steps_moves_the_later_steps_by_a_day(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 4)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await workflow_env.sleep(timedelta(hours=12))
        await handle.signal(PAUSE, PauseSignal(reason="test"))
        await workflow_env.sleep(timedelta(days=1))
        assert len(outbound.files("sms")) == 0
        await handle.signal(RESUME, ResumeSignal())
        progress = await handle.result()
        await save_history(handle, "pause_resume")
        await save_history(outbound.step_handle(campaign, 1), "pause_resume_step_1")

    starts = [plan.start_at - progress.start_at for plan in progress.steps]
    assert starts[1] == pytest.approx(timedelta(days=2), abs=timedelta(seconds=5))
    assert starts[2] == pytest.approx(timedelta(days=4), abs=timedelta(seconds=5))
    assert outbound.counts(campaign) == {(1, "SENT"): 4, (2, "SENT"): 4, (3, "SENT"): 4}


async def test_after_a_resume_the_step_timers_still_name_the_campaigns_time_zone(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    spec = campaign_spec(THREE_STEPS, timezone="America/New_York")
    campaign = seed(outbound.sessions, spec, {"A": people("a", 2)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await workflow_env.sleep(timedelta(hours=12))
        await handle.signal(PAUSE, PauseSignal(reason="test"))
        await workflow_env.sleep(timedelta(hours=6))
        await handle.signal(RESUME, ResumeSignal())
        progress = await handle.result()
        history = await handle.fetch_history()

    timers = [
        event.user_metadata.summary.data.decode()
        for event in history.events
        if event.HasField("timer_started_event_attributes") and event.HasField("user_metadata")
    ]
    resumed_step_2 = [summary for summary in timers if "step 2" in summary][-1]
    assert resumed_step_2.endswith(' America/New_York"'), timers
    assert all(plan.start_label and plan.start_label.endswith("America/New_York") for plan in progress.steps)


async def test_a_single_email_step_completes(outbound: Outbound) -> None:
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)})
    async with outbound.worker():
        progress = await (await outbound.launch(campaign)).result()
    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert len(outbound.files("email")) == 2


async def test_a_step_refills_its_send_window_once_half_of_it_is_free(outbound: Outbound) -> None:
    """With every row due at once, each page of due rows after the first refills at least
    half the window: not one fetch round trip for every send that finished meanwhile."""
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 120)})
    async with outbound.worker():
        handle = await outbound.launch(campaign, tuning=Tuning(send_window=10))
        await handle.result()
        await save_history(outbound.step_handle(campaign, 1), "step_refill_half_window")
        pages = await fetched_pages(outbound, campaign, step=1)
    sizes = [len(page.execution_ids) for page in pages if page.execution_ids]
    assert sum(sizes) == 120
    assert sizes[0] == 10
    assert all(size >= 5 for size in sizes[1:-1]), sizes
    assert len(pages) <= 1 + 110 // 5 + 2  # the last page may be short; one empty page ends the step


async def fetched_pages(outbound: Outbound, campaign: int, step: int) -> list[FetchDueResult]:
    """The results of the step's `fetch_due` activities, in order, from its history."""
    converter = outbound.client.data_converter.payload_converter
    history = await outbound.step_handle(campaign, step).fetch_history()
    fetches = {
        event.event_id
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == "fetch_due"
    }
    return [
        converter.from_payloads(attributes.result.payloads, [FetchDueResult])[0]
        for event in history.events
        if event.HasField("activity_task_completed_event_attributes")
        and (attributes := event.activity_task_completed_event_attributes).scheduled_event_id in fetches
    ]
