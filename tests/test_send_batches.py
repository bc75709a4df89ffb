"""Sending in batches: fewer activities, every guarantee still per message.

A batch holds due rows of one sender; each row passes its own gate, has its own outcome,
and a message that fails goes back to its row with its next time while the rest of the
batch goes on. The heartbeat carries the batch's progress, so a retry after a crash
resumes with the first message it had not finished.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from activities.message_links import MessageLinks
from activities.sending import SendActivities
from db.engine import single_statements, unit_of_work
from db.models import DeadLetter, StepExecution
from db.planning import fetch_due
from db.sending import attempts_after_failure, retry_later
from providers.outbox import OutboxProvider
from runtime.settings import OutboxFaults
from schemas.activity_io import BatchItem, SendBatchInput
from schemas.enums import SendOutcome
from schemas.workflow_io import Tuning
from tests.conftest import Database
from tests.support import EMAIL_SENDER, EMAIL_STEP, CountingProvider, Outbound, campaign_spec, people, seed
from tests.test_claims_and_batches import fetch, plan
from tests.test_step_planning import NOW, launched, rows, set_rows

pytestmark = pytest.mark.timeout(180)
BATCHES_OF_20 = Tuning(send_batch_size=20)


async def scheduled_activities(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(activity type, input) of every activity the workflow scheduled."""
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            payload = attributes.input.payloads[0].data if attributes.input.payloads else b"{}"
            found.append((attributes.activity_type.name, json.loads(payload)))
    return found


def senders_of(outbound: Outbound) -> dict[int, int]:
    with outbound.sessions() as session:
        return {row.id: row.sender_id for row in session.execute(select(StepExecution.id, StepExecution.sender_id))}


async def test_a_batch_sends_up_to_twenty_messages_of_one_sender_in_one_activity(outbound: Outbound) -> None:
    spec = campaign_spec([EMAIL_STEP], senders={"email": [EMAIL_SENDER, "team@outbound.example"]})
    campaign = seed(outbound.sessions, spec, {"A": people("a", 45)})
    provider = CountingProvider(OutboxProvider(outbound.outbox, outbound.faults))
    async with outbound.worker(providers={"outbox": provider}):
        handle = await outbound.launch(campaign, tuning=BATCHES_OF_20)
        await handle.result()
        sends = [
            request
            for name, request in await scheduled_activities(outbound.step_handle(campaign, 1))
            if name.startswith("send_")
        ]

    assert outbound.counts(campaign) == {(1, "SENT"): 45}
    assert sorted(provider.sends.values()) == [1] * 45
    assert {request["execution_ids"][0] for request in sends} <= set(senders_of(outbound))
    assert all("execution_id" not in request for request in sends), "no activity per message"
    sizes = sorted(len(request["execution_ids"]) for request in sends)
    assert sum(sizes) == 45
    assert max(sizes) <= 20
    assert len(sizes) < 45 / 5, f"batches of several messages: {sizes}"
    sender = senders_of(outbound)
    assert all(len({sender[row] for row in request["execution_ids"]}) == 1 for request in sends), "one sender a batch"


async def test_a_failing_message_is_retried_by_itself_while_its_batch_goes_on(outbound: Outbound) -> None:
    outbound.faults = OutboxFaults(transient_failures=2, transient_failure_marker="a3@")
    provider = CountingProvider(OutboxProvider(outbound.outbox, outbound.faults))
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 8)})
    async with outbound.worker(providers={"outbox": provider}):
        await (await outbound.launch(campaign, tuning=BATCHES_OF_20)).result()

    assert outbound.counts(campaign) == {(1, "SENT"): 8}
    failing = outbound.contact_id("a3@example.com")
    with outbound.sessions() as session:
        rows = {row.contact_id: row for row in session.scalars(select(StepExecution))}
    assert provider.sends[rows[failing].id] == 3, "two failures, then the send"
    assert rows[failing].attempts == 3, "each attempt counted on the row"
    others = [row for contact, row in rows.items() if contact != failing]
    assert all(provider.sends[row.id] == 1 and row.attempts == 1 for row in others), "the rest were not retried"
    assert len(outbound.files("email")) == 8


async def test_a_message_out_of_attempts_is_dead_lettered_and_its_batch_completes(outbound: Outbound) -> None:
    outbound.faults = OutboxFaults(transient_failures=100, transient_failure_marker="a1@")
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 4)})
    quick = BATCHES_OF_20.model_copy(update={"retry_maximum_attempts": 3, "retry_initial_seconds": 1})
    async with outbound.worker():
        await (await outbound.launch(campaign, tuning=quick)).result()
        counters = await outbound.step_handle(campaign, 1).result()

    assert outbound.counts(campaign) == {(1, "SENT"): 3, (1, "FAILED"): 1}
    assert (counters["sent"], counters["failed"]) == (3, 1), "each message's outcome counted by the step"
    with outbound.sessions() as session:
        (letter,) = session.scalars(select(DeadLetter))
    assert (letter.error_type, letter.attempts, letter.retry_state) == (
        "ProviderTransient",
        3,
        "MAXIMUM_ATTEMPTS_REACHED",
    )


def test_a_retried_batch_resumes_after_the_messages_its_heartbeat_reported(db: Database, tmp_path: Path) -> None:
    """The retry after a crash skips what the dead attempt reported done: those rows are
    not even looked at again; the rest are sent."""
    provider = CountingProvider(OutboxProvider(tmp_path / "outbox", OutboxFaults()))
    (email,) = launched(db, 4, [EMAIL_STEP])
    plan(db, email)
    due = fetch(db, email, "run-a:1", limit=10)
    reported = [BatchItem(execution_id=due[0], outcome=SendOutcome.SENT).model_dump(mode="json")]

    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, heartbeat_details=[reported])
    links = MessageLinks("http://localhost:8080", b"unsubscribe-links-key-for-tests!", 90)
    activities = SendActivities(db.sessions, {"outbox": provider}, links)
    result = environment.run(
        activities.send_batch, SendBatchInput(execution_ids=due, now=NOW, retry=Tuning().message_retry())
    )

    assert [item.execution_id for item in result.items] == due
    assert due[0] not in provider.sends, "reported done by the dead attempt: not touched again"
    assert all(provider.sends[row] == 1 for row in due[1:])
    assert [item.outcome for item in result.items] == [SendOutcome.SENT] * 4


def test_a_message_waiting_for_its_retry_is_handed_out_again_when_its_time_comes(db: Database) -> None:
    """Still SENDING (it may have gone out: its next attempt asks the provider first),
    held until its retry time, and never claimed as a new send."""
    (email,) = launched(db, 2, [EMAIL_STEP])
    plan(db, email)
    first, second = fetch(db, email, "run-a:1", limit=10)
    set_rows(db, [first], status="SENDING", attempts=1, lease_until=NOW, claim_token=None)
    with single_statements(db.engine) as statements:
        assert attempts_after_failure(statements, first) == 1
        assert retry_later(statements, first, NOW + timedelta(seconds=30), NOW) == 1
        assert attempts_after_failure(statements, second) == 1, "a failure before the gate counts too"
        assert retry_later(statements, second, NOW + timedelta(seconds=30), NOW) == 1

    assert fetch(db, email, "run-a:2", now=NOW + timedelta(seconds=29), limit=10) == []
    with unit_of_work(db.sessions) as session:
        waiting = fetch_due(session, email, NOW + timedelta(seconds=10), 10, 60, [], "run-a:3")
    assert waiting.next_due == NOW + timedelta(seconds=30), "the step sleeps until the retries"
    assert sorted(fetch(db, email, "run-a:4", now=NOW + timedelta(seconds=31), limit=10)) == [first, second]
    statuses = {row.id: (row.status, row.claim_token) for row in rows(db, email)}
    assert statuses[first] == ("SENDING", None), "a SENDING row is only ever taken by claim_retry"
    assert statuses[second] == ("QUEUED", "run-a:4")
    with unit_of_work(db.sessions) as session:
        in_flight = fetch_due(session, email, NOW + timedelta(seconds=31), 10, 60, [first], "run-a:5")
    assert first not in in_flight.execution_ids, "never handed out twice to the run that has it in flight"
