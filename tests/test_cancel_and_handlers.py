"""Cancel at the edges, signal handlers that cannot hold a campaign, acknowledged lifecycle
Updates, and continue-as-new that does not wait on retries (time-skipping test server)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import sending
from db.models import Campaign, DeadLetter, StepExecution
from providers.outbox import OutboxProvider
from runtime.settings import OutboxFaults
from schemas.enums import CampaignStatus
from schemas.signals import CANCEL, CONTACT_REPLIED, CancelSignal, ContactRepliedSignal
from schemas.workflow_io import Tuning
from starter.client import CampaignControlError, OutboundClient
from tests.support import (
    EITHER_BATCH_SIZE,
    EMAIL_STEP,
    SMS_STEP,
    THREE_STEPS,
    CountingProvider,
    Outbound,
    campaign_spec,
    people,
    save_history,
    seed,
)

pytestmark = pytest.mark.timeout(120)

# Retries far apart: before the test waits on the result (when the test server starts
# skipping time), a failed send sits in its retry backoff.
SLOW_RETRIES = Tuning(retry_initial_seconds=3600, retry_max_interval_seconds=3600, retry_maximum_attempts=5)


def statuses(outbound: Outbound, campaign_id: int) -> dict[str, int]:
    with outbound.sessions() as session:
        rows = session.execute(
            select(StepExecution.status, func.count())
            .where(StepExecution.campaign_id == campaign_id)
            .group_by(StepExecution.status)
        ).all()
    return {status: count for status, count in rows}


def dead_letters(outbound: Outbound) -> list[DeadLetter]:
    with outbound.sessions() as session:
        return list(session.scalars(select(DeadLetter)))


async def wait_until(condition: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@EITHER_BATCH_SIZE
async def test_cancel_while_sends_wait_to_retry_settles_them_as_cancelled_never_failed(outbound: Outbound) -> None:
    outbound.faults = OutboxFaults(transient_failures=100)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP, SMS_STEP]), {"A": people("a", 4)})
    async with outbound.worker():
        handle = await outbound.launch(campaign, tuning=SLOW_RETRIES)
        await wait_until(lambda: statuses(outbound, campaign).get("SENDING") == 4, "four sends in retry backoff")
        await handle.signal(CANCEL, CancelSignal(reason="test"))
        progress = await handle.result()
        step = await outbound.step_handle(campaign, 1).describe()
        assert step.status == WorkflowExecutionStatus.COMPLETED, "the step wound down with the campaign"
        await save_history(handle, "cancel_with_sends_in_retry_backoff")
        await save_history(outbound.step_handle(campaign, 1), "cancel_with_sends_in_retry_backoff_step_1")

    assert progress.lifecycle.state is CampaignStatus.CANCELLED
    assert statuses(outbound, campaign) == {"CANCELLED": 8}, "cancelled sends end CANCELLED, never FAILED or SENDING"
    assert dead_letters(outbound) == []
    assert outbound.files("email") == []


@pytest.mark.parametrize("send_batch_size", [20])
async def test_a_cancel_settles_every_page_of_messages_waiting_in_the_table_for_their_retry(
    outbound: Outbound, workflow_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's failed messages wait for their retry on their rows; a cancel settles them a
    page per call, however many pages there are (more than one call's retries would cover)."""
    monkeypatch.setattr(sending, "SETTLE_PAGE", 1)
    outbound.faults = OutboxFaults(transient_failures=1000)
    contacts = 20  # one batch; twenty pages of one: more than the ten attempts one call gets
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", contacts)})
    async with outbound.worker():
        handle = await outbound.launch(campaign, tuning=SLOW_RETRIES)
        for _ in range(120):  # the planner spaces one sender's sends: let them come due
            if statuses(outbound, campaign).get("SENDING") == contacts:
                break
            await workflow_env.sleep(timedelta(minutes=1))
        assert statuses(outbound, campaign) == {"SENDING": contacts}, "every send waiting to retry"
        await handle.signal(CANCEL, CancelSignal(reason="test"))
        progress = await handle.result()
        step = await outbound.step_handle(campaign, 1).describe()
        assert step.status == WorkflowExecutionStatus.COMPLETED, "the step wound down with the campaign"

    assert progress.lifecycle.state is CampaignStatus.CANCELLED
    assert statuses(outbound, campaign) == {"CANCELLED": contacts}
    assert dead_letters(outbound) == []
    assert outbound.files("email") == []


@EITHER_BATCH_SIZE
async def test_a_cancelled_send_the_provider_already_took_ends_sent(outbound: Outbound) -> None:
    """The first attempt reached the provider but its answer was lost (the outbox writes,
    then fails); the cancel asks the provider, as any retry would, and records SENT."""
    outbound.faults = OutboxFaults(crash_after_write=True)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 3)})
    async with outbound.worker():
        handle = await outbound.launch(campaign, tuning=SLOW_RETRIES)
        await wait_until(lambda: statuses(outbound, campaign).get("SENDING") == 3, "three sends in retry backoff")
        await handle.signal(CANCEL, CancelSignal())
        await handle.result()

    assert statuses(outbound, campaign) == {"SENT": 3}
    assert len(outbound.files("email")) == 3


async def test_temporal_workflow_cancel_during_enrollment_cancels_the_campaign_in_the_database(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.enrollment

    enroll = db.enrollment.enroll

    def slow_enroll(*args: Any) -> Any:
        time.sleep(2.0)  # a large enrollment
        return enroll(*args)

    monkeypatch.setattr(db.enrollment, "enroll", slow_enroll)
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 5)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await asyncio.sleep(0.8)  # enrollment is running
        await handle.cancel()
        progress = await handle.result()

    assert progress.lifecycle.state is CampaignStatus.CANCELLED
    with outbound.sessions() as session:
        assert session.get_one(Campaign, campaign).status == CampaignStatus.CANCELLED.value
    # Enrollment was let finish, so the cancel closed every (step, contact) pair it made.
    assert statuses(outbound, campaign) == {"CANCELLED": 15}
    assert outbound.files("email") == []


async def test_a_reply_signal_naming_an_unknown_contact_cannot_hold_the_campaign(outbound: Outbound) -> None:
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)})
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await handle.signal(CONTACT_REPLIED, ContactRepliedSignal(contact_id=987_654, event_id="bad-1"))
        progress = await asyncio.wait_for(handle.result(), timeout=60)

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert statuses(outbound, campaign) == {"SENT": 2}


async def test_the_client_refuses_a_reply_signal_it_can_tell_is_bad(outbound: Outbound) -> None:
    client = OutboundClient(outbound.client, outbound.prefix)
    for bad in (0, -3, True):
        with pytest.raises(CampaignControlError, match="contact id must be a positive whole number"):
            await client.contact_replied(1, bad)


async def test_lifecycle_updates_answer_once_the_gate_is_committed_or_refuse_with_the_state(
    outbound: Outbound,
) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 2)})
    client = OutboundClient(outbound.client, outbound.prefix)
    async with outbound.worker():
        await outbound.launch(campaign, start_delay_seconds=3600)

        paused = await client.pause_now(campaign, "check the copy")
        assert (paused.state, paused.campaign_id) == (CampaignStatus.PAUSED, campaign)
        with outbound.sessions() as session:
            assert session.get_one(Campaign, campaign).status == "PAUSED", "acknowledged after the gate"
        with pytest.raises(CampaignControlError, match=f"campaign {campaign} is PAUSED; it cannot pause"):
            await client.pause_now(campaign)

        resumed = await client.resume_now(campaign)
        assert resumed.state is CampaignStatus.ACTIVE
        assert resumed.version > paused.version
        with pytest.raises(CampaignControlError, match=f"campaign {campaign} is ACTIVE; it cannot resume"):
            await client.resume_now(campaign)

        cancelled = await client.cancel_now(campaign)
        assert cancelled.state is CampaignStatus.CANCELLED
        await client.handle(campaign).result()
        await save_history(client.handle(campaign), "lifecycle_updates_gate_first")

        with pytest.raises(CampaignControlError, match=f"campaign {campaign} is CANCELLED; it cannot pause"):
            await client.pause_now(campaign)
        with pytest.raises(CampaignControlError, match="campaign 424242 has not been launched"):
            await client.cancel_now(424242)


async def every_run_input(outbound: Outbound, handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The input of every run of a workflow, first run first."""
    inputs = []
    run_id: str | None = None
    while True:
        history = await outbound.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        inputs.insert(0, json.loads(started.input.payloads[0].data))
        if not started.continued_execution_run_id:
            return inputs
        run_id = started.continued_execution_run_id


@pytest.mark.timeout(240)
async def test_continue_as_new_hands_sends_waiting_to_retry_to_the_next_run(outbound_on_dev_server: Outbound) -> None:
    """A few messages fail once; their retries would come ten minutes later (real time, on
    the dev server). The step continues as new without waiting for those retries: the next
    run takes them over at once, and every message still goes out exactly once. (With
    batches there is nothing to hand over: a failed message waits out its backoff on its row.)"""
    outbound = outbound_on_dev_server
    # Three flaky contacts after ten good ones, then thirty more, so several runs follow theirs.
    outbound.faults = OutboxFaults(transient_failures=1, transient_failure_marker="flaky")
    provider = CountingProvider(OutboxProvider(outbound.outbox, outbound.faults))
    contacts = people("a", 10) + people("flaky", 3, start=10) + people("b", 30, start=13)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": contacts})
    tuning = Tuning(history_threshold=60, send_window=6, retry_initial_seconds=600, retry_max_interval_seconds=600)
    async with outbound.worker(providers={"outbox": provider}):
        handle = await outbound.launch(campaign, tuning=tuning)
        await asyncio.wait_for(handle.result(), timeout=150)  # draining would take ten minutes or more
        runs = await every_run_input(outbound, outbound.step_handle(campaign, 1))

    assert statuses(outbound, campaign) == {"SENT": 43}
    assert len(outbound.files("email")) == 43
    flaky = [execution for execution, sends in provider.sends.items() if sends == 2]
    assert sorted(provider.sends.values()) == [1] * 40 + [2] * 3, "one retry for each flaky message, no more"
    assert any(run.get("handover") for run in runs[1:]), "a run handed its waiting sends to the next"
    assert dead_letters(outbound) == []
    with outbound.sessions() as session:
        attempts = session.scalars(select(StepExecution.attempts).where(StepExecution.id.in_(flaky))).all()
    assert sorted(attempts) == [2] * 3, "each row counts both of its attempts"


async def test_a_resume_answers_before_its_batches_have_moved_the_waiting_rows(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a million contacts the batches take minutes; the resume is acknowledged (and the
    steps are told) at once, and a pause meanwhile is acknowledged too."""
    import activities.campaign

    released = threading.Event()
    moving = threading.Event()
    reslot = activities.campaign.reslot_open_rows

    def held_reslot(*args: Any) -> None:
        moving.set()
        released.wait(30)
        reslot(*args)

    monkeypatch.setattr(activities.campaign, "reslot_open_rows", held_reslot)
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 2)})
    client = OutboundClient(outbound.client, outbound.prefix)
    async with outbound.worker():
        await outbound.launch(campaign, start_delay_seconds=3600)
        await client.pause_now(campaign)
        resumed = await asyncio.wait_for(client.resume_now(campaign), timeout=10)
        assert resumed.state is CampaignStatus.ACTIVE
        await asyncio.wait_for(asyncio.to_thread(moving.wait, 10), timeout=15)
        with outbound.sessions() as session:
            assert session.get_one(Campaign, campaign).reslot_from is not None, "the batches still run"
        paused = await asyncio.wait_for(client.pause_now(campaign), timeout=10)
        assert paused.state is CampaignStatus.PAUSED
        released.set()
        await client.resume_now(campaign)
        await client.cancel_now(campaign)
        await client.handle(campaign).result()
        await save_history(client.handle(campaign), "resume_reslots_in_background")

    with outbound.sessions() as session:
        assert session.get_one(Campaign, campaign).reslot_from is None, "both resumes' batches finished"
