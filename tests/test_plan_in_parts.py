"""A step plans a part of its contacts at a time, the next part when the rows planned run
low: the first sends start after one part, and planning follows what is due, not the
campaign's size. A pass in parts plans every contact once, as a pass at once would.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

import db.planning as planning
import workflows.step as step_workflow
from db.engine import unit_of_work
from db.planning import plan_step
from providers.outbox import OutboxProvider
from schemas.workflow_io import Tuning
from tests.conftest import Database
from tests.support import EMAIL_STEP, CountingProvider, Outbound, campaign_spec, people, seed
from tests.test_step_planning import NOW, SMS_AFTER_AN_HOUR, launched, rows, set_rows

pytestmark = pytest.mark.timeout(180)


def test_a_pass_with_a_budget_goes_on_where_it_stopped_and_plans_everyone_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "PAGE", 4)
    (email,) = launched(db, 10, [EMAIL_STEP])
    planned, resume, calls = 0, None, 0
    while True:
        with unit_of_work(db.sessions) as session:
            result = plan_step(session, email, NOW, resume_after=resume, budget=4)
        planned, resume, calls = planned + result.planned, result.resume_after, calls + 1
        if resume is None:
            break
        assert result.planned == 4, "a part reads its budget of enrollments"
    assert (planned, calls) == (10, 3)
    assert len({row.contact_id for row in rows(db, email)}) == 10


def test_a_later_step_planned_in_parts_waits_for_a_pass_begun_after_the_previous_step_finished(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous step finishing half-way through a pass does not end the planning: the
    parts read before it may have missed contacts, so the pass says what it saw first."""
    monkeypatch.setattr(planning, "PAGE", 2)
    email, sms = launched(db, 4, [EMAIL_STEP, SMS_AFTER_AN_HOUR])
    with unit_of_work(db.sessions) as session:
        plan_step(session, email, NOW)
    first_part = plan_once(db, sms, None)
    assert (first_part.planned, first_part.previous_finished) == (0, False)
    set_rows(db, [row.id for row in rows(db, email)], status="SENT", sent_at=NOW)
    with unit_of_work(db.sessions) as session:
        planning.mark_step_finished(session, email, NOW)
    last_part = plan_once(db, sms, first_part.resume_after)
    assert last_part.resume_after is None
    assert last_part.planned == 2, "only the contacts above where the pass stopped"
    # The workflow keeps the first part's answer (not finished) and so plans again.


def plan_once(db: Database, step_id: int, resume_after: int | None) -> Any:
    with unit_of_work(db.sessions) as session:
        return plan_step(session, step_id, NOW, resume_after=resume_after, budget=2)


async def activity_order(handle: WorkflowHandle[Any, Any]) -> list[str]:
    names = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names.append(event.activity_task_scheduled_event_attributes.activity_type.name)
    return names


async def test_a_large_step_sends_after_its_first_part_and_plans_the_rest_as_rows_run_low(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "PAGE", 10)
    # Fewer open rows than this and the next part is planned (1,000 in production).
    monkeypatch.setattr(planning, "OPEN_COUNT_CAP", 5)
    monkeypatch.setattr(step_workflow, "OPEN_COUNT_CAP", 5)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 45)})
    provider = CountingProvider(OutboxProvider(outbound.outbox))
    async with outbound.worker(providers={"outbox": provider}):
        handle = await outbound.launch(campaign, tuning=Tuning(plan_part=10, send_window=4))
        await handle.result()
        order = await activity_order(outbound.step_handle(campaign, 1))

    assert outbound.counts(campaign) == {(1, "SENT"): 45}
    assert sorted(provider.sends.values()) == [1] * 45
    plans = [index for index, name in enumerate(order) if name == "plan_step"]
    first_send = order.index("send_message")
    assert len(plans) >= 5, f"a part of 10 contacts at a time: {order}"
    assert first_send < plans[1], "sending begins after the first part"
    sends_between = [order[start:end].count("send_message") for start, end in pairwise(plans)]
    assert all(sends_between), f"each next part waits for sends: {order}"
