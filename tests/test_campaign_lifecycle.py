"""Cancel, replies and continue-as-new on the time-skipping test server."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from db.models import Step, StepExecution
from runtime.names import step_workflow_id
from schemas.enums import CampaignStatus
from schemas.signals import CANCEL, CONTACT_REPLIED, CancelSignal, ContactRepliedSignal
from schemas.workflow_io import Tuning
from tests.support import (
    EITHER_BATCH_SIZE,
    EMAIL_STEP,
    SMS_STEP,
    THREE_STEPS,
    Outbound,
    campaign_spec,
    people,
    save_history,
    seed,
)

pytestmark = pytest.mark.timeout(180)


@EITHER_BATCH_SIZE
async def test_cancel_after_the_first_step_cancels_everything_pending(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 5)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await workflow_env.sleep(timedelta(hours=12))
        await handle.signal(CANCEL, CancelSignal(reason="test"))
        progress = await handle.result()
        await save_history(handle, "cancel_after_first_step")

    assert progress.lifecycle.state is CampaignStatus.CANCELLED
    assert outbound.counts(campaign) == {(1, "SENT"): 5, (2, "CANCELLED"): 5, (3, "CANCELLED"): 5}
    assert (len(outbound.files("email")), len(outbound.files("sms"))) == (5, 0)


async def test_cancel_during_the_start_delay_sends_nothing(outbound: Outbound) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 3)})
    async with outbound.worker():
        handle = await outbound.launch(campaign, start_delay_seconds=300)
        await handle.signal(CANCEL, CancelSignal())
        progress = await handle.result()
    assert progress.lifecycle.state is CampaignStatus.CANCELLED
    assert progress.enrolled == 0
    assert outbound.files("email") == []


async def test_temporal_workflow_cancel_takes_the_same_path_as_the_signal(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 3)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await workflow_env.sleep(timedelta(hours=6))
        await handle.cancel()
        progress = await handle.result()
    assert progress.lifecycle.state is CampaignStatus.CANCELLED
    assert outbound.counts(campaign) == {(1, "SENT"): 3, (2, "CANCELLED"): 3, (3, "CANCELLED"): 3}


@EITHER_BATCH_SIZE
async def test_a_contact_who_replies_after_step_one_gets_nothing_more(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 4)})
    replier = outbound.contact_id("a1@example.com")
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await workflow_env.sleep(timedelta(hours=12))
        await handle.signal(CONTACT_REPLIED, ContactRepliedSignal(contact_id=replier, event_id="msg-1"))
        await handle.signal(CONTACT_REPLIED, ContactRepliedSignal(contact_id=replier, event_id="msg-1"))
        progress = await handle.result()
        await save_history(handle, "reply_mid_campaign")

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    counts = outbound.counts(campaign)
    assert counts[(1, "SENT")] == 4
    assert (counts[(2, "SENT")], counts[(2, "SKIPPED")]) == (3, 1)
    assert (counts[(3, "SENT")], counts[(3, "SKIPPED")]) == (3, 1)


@EITHER_BATCH_SIZE
async def test_step_histories_stay_bounded_by_continue_as_new(outbound: Outbound) -> None:
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP, SMS_STEP]), {"A": people("a", 60)})
    tuning = Tuning(history_threshold=60, send_window=5)
    async with outbound.worker():
        handle = await outbound.launch(campaign, tuning=tuning)
        await handle.result()
        step = outbound.client.get_workflow_handle(step_workflow_id(campaign, 1, outbound.prefix))
        history = await step.fetch_history()
        await save_history(step, "step_after_continue_as_new")

    assert outbound.counts(campaign) == {(1, "SENT"): 60, (2, "SENT"): 60}
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id, "the step workflow should have continued as new"
    assert len(history.events) < 60 + 5 * 8


def rows_by_position(outbound: Outbound, campaign_id: int, position: int) -> dict[int, StepExecution]:
    with outbound.sessions() as session:
        query = (
            select(StepExecution)
            .join(Step, Step.id == StepExecution.step_id)
            .where(Step.campaign_id == campaign_id, Step.position == position)
        )
        return {row.contact_id: row for row in session.scalars(query)}


async def every_run(client: Client, handle: WorkflowHandle[Any, Any]) -> list[WorkflowHistory]:
    """The histories of every run of a workflow, first run first (following continue-as-new back)."""
    histories = [await handle.fetch_history()]
    while previous := histories[0].events[0].workflow_execution_started_event_attributes.continued_execution_run_id:
        earlier = client.get_workflow_handle(handle.id, run_id=previous)
        histories.insert(0, await earlier.fetch_history())
    return histories


def plan_inputs(history: WorkflowHistory) -> list[dict[str, Any]]:
    scheduled = (event.activity_task_scheduled_event_attributes for event in history.events)
    return [json.loads(a.input.payloads[0].data) for a in scheduled if a.activity_type.name == "plan_step"]


async def test_a_step_that_overlaps_the_previous_one_replans_from_its_cursor_across_runs(outbound: Outbound) -> None:
    """SMS right after each email: the SMS step replans every few seconds while the emails
    go out a minute apart, each replan reading only what changed since the last one, and
    the cursor survives continue-as-new."""
    sms_at_once = {"channel": "sms", "body": "Hi {{ first_name }}", "wait": "0s"}
    spec = campaign_spec([EMAIL_STEP, sms_at_once], send_gap="1m")
    campaign = seed(outbound.sessions, spec, {"A": people("a", 6)})
    async with outbound.worker():
        handle = await outbound.launch(campaign, tuning=Tuning(history_threshold=60, send_window=5))
        await handle.result()
        runs = await every_run(outbound.client, outbound.step_handle(campaign, 2))

    assert outbound.counts(campaign) == {(1, "SENT"): 6, (2, "SENT"): 6}
    emails, sms = rows_by_position(outbound, campaign, 1), rows_by_position(outbound, campaign, 2)
    assert all(sms[contact].scheduled_for >= emails[contact].sent_at for contact in sms), "each SMS after its email"
    plans = [plan_inputs(history) for history in runs]
    assert len(plans) > 1, "the SMS step should have continued as new"
    assert plans[0][0]["since"] is None, "the first pass reads every enrollment"
    assert all(run[0]["since"] is not None for run in plans[1:] if run), "a continued run keeps the cursor"
    replans = [plan["since"] is not None for run in plans for plan in run]
    assert replans.count(True) >= 3, "replans read only what changed"
