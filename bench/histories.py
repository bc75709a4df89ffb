"""What the workflow histories of a run say: lengths, payload sizes, activity timings.

Every run of every workflow is read after the campaign (continue-as-new runs are
separate histories and are measured separately), so production code stays unchanged.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

_ACTIVITY_CLOSED = {
    "activity_task_completed_event_attributes": "completed",
    "activity_task_failed_event_attributes": "failed",
    "activity_task_timed_out_event_attributes": "timed_out",
    "activity_task_canceled_event_attributes": "canceled",
}
WORKFLOW_TASK = "(workflow task)"
_ACTIONS = {
    "activity_task_scheduled_event_attributes": "activities",
    "workflow_task_scheduled_event_attributes": "workflow tasks",
    "timer_started_event_attributes": "timers",
    "workflow_execution_signaled_event_attributes": "signals",
    "signal_external_workflow_execution_initiated_event_attributes": "signals",
}


def payload_sizes(message: Message) -> Iterator[int]:
    """The serialised size of every `Payloads` and lone `Payload` inside `message`."""
    for descriptor, value in message.ListFields():
        kind = descriptor.message_type
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE or kind is None:
            continue
        if kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].type != FieldDescriptor.TYPE_MESSAGE:
                continue
            items: Any = value.values()
        elif descriptor.is_repeated:
            items = value
        else:
            items = (value,)
        for item in items:
            if isinstance(item, Payloads | Payload):
                yield item.ByteSize()
            else:
                yield from payload_sizes(item)


@dataclass
class Largest:
    size: float = 0
    where: str = ""

    def offer(self, size: float, where: str) -> None:
        if size > self.size:
            self.size, self.where = size, where


@dataclass
class Timings:
    """Per kind of task: time waiting in the queue, time running, and when each finished."""

    queued: list[float] = field(default_factory=list)
    running: list[float] = field(default_factory=list)
    closed: dict[str, int] = field(default_factory=dict)
    first_close: float | None = None
    last_close: float | None = None
    longest: Largest = field(default_factory=Largest)
    spans: list[tuple[float, float, str]] = field(default_factory=list)  # (started, closed, where)

    def add(self, scheduled: float, started: float | None, closed: float, outcome: str, where: str = "") -> None:
        if started is not None:
            self.queued.append(started - scheduled)
            self.running.append(closed - started)
            self.longest.offer(closed - started, where)
            self.spans.append((started, closed, where))
        self.closed[outcome] = self.closed.get(outcome, 0) + 1
        self.first_close = closed if self.first_close is None else min(self.first_close, closed)
        self.last_close = closed if self.last_close is None else max(self.last_close, closed)

    @property
    def completed(self) -> int:
        return self.closed.get("completed", 0)

    def longest_split(self, moment: float | None) -> tuple[Largest, Largest]:
        """The longest run among tasks that closed before `moment` (epoch seconds), and
        among those still running then. A benchmark cancelled at its time limit sends
        `moment`: the cancel writes every pending row in one transaction, and tasks that
        meet it wait for its locks, which says nothing about their normal cost."""
        before, during = Largest(), Largest()
        for started, closed, where in self.spans:
            (before if moment is None or closed < moment else during).offer(closed - started, where)
        return before, during

    def rate(self) -> float:
        """Completions per second from the first to the last close."""
        if self.first_close is None or self.last_close is None or self.last_close <= self.first_close:
            return 0.0
        return self.completed / (self.last_close - self.first_close)

    def summary(self) -> dict[str, Any]:
        return {
            "count": sum(self.closed.values()),
            "outcomes": self.closed,
            "queued_s": _spread(self.queued),
            "running_s": _spread(self.running),
            "running_total_s": round(sum(self.running), 3),
            "longest_where": self.longest.where,
            "completions_per_s": round(self.rate(), 1),
        }


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 4)

    return {
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1], 4),
        "mean": round(statistics.fmean(ordered), 4),
    }


@dataclass
class HistoryScan:
    runs: int = 0
    events: int = 0
    longest: Largest = field(default_factory=Largest)
    largest_payload: Largest = field(default_factory=Largest)
    largest_event: Largest = field(default_factory=Largest)
    runs_per_workflow: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, Timings] = field(default_factory=dict)
    # What Temporal Cloud bills as actions, by kind: activities scheduled (a retry is
    # another), workflow tasks, timers started and signals (received or sent).
    actions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def count_action(self, kind: str) -> None:
        self.actions[kind] = self.actions.get(kind, 0) + 1

    @property
    def total_actions(self) -> int:
        return sum(self.actions.values())

    def timings(self, kind: str) -> Timings:
        return self.tasks.setdefault(kind, Timings())

    def summary(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "events": self.events,
            "runs_per_workflow": self.runs_per_workflow,
            "longest_history": {"events": self.longest.size, "where": self.longest.where},
            "largest_payload": {"bytes": self.largest_payload.size, "where": self.largest_payload.where},
            "largest_event": {"bytes": self.largest_event.size, "where": self.largest_event.where},
            "tasks": {kind: timings.summary() for kind, timings in sorted(self.tasks.items())},
            "actions": self.actions,
            "scan_seconds": round(self.seconds, 1),
        }


async def list_runs(
    client: Client, query: str, *, expected_ids: set[str], timeout: float = 120
) -> list[WorkflowExecution]:
    """Every run matching `query`, once visibility has caught up: all closed, and each
    workflow has one run more than it has runs that continued-as-new."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [execution async for execution in client.list_workflows(query)]
        if _complete(runs, expected_ids) or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(1)


def _complete(runs: list[WorkflowExecution], expected_ids: set[str]) -> bool:
    if not expected_ids <= {run.id for run in runs}:
        return False
    if any(run.status in (None, WorkflowExecutionStatus.RUNNING) for run in runs):
        return False
    for workflow_id in {run.id for run in runs}:
        mine = [run for run in runs if run.id == workflow_id]
        continued = sum(run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW for run in mine)
        if len(mine) != continued + 1:
            return False
    return True


async def scan(client: Client, runs: list[WorkflowExecution], *, parallel: int = 4) -> HistoryScan:
    result = HistoryScan()
    gate = asyncio.Semaphore(parallel)
    started = time.perf_counter()
    ordered = sorted(runs, key=lambda run: (run.id, run.start_time))
    numbers: dict[str, int] = {}
    labelled = []
    for run in ordered:
        numbers[run.id] = numbers.get(run.id, 0) + 1
        labelled.append((run, f"{run.id} run {numbers[run.id]}"))
    result.runs_per_workflow = numbers

    async def one(run: WorkflowExecution, label: str) -> None:
        async with gate:
            await _scan_run(client, run, label, result)

    await asyncio.gather(*(one(run, label) for run, label in labelled))
    result.seconds = time.perf_counter() - started
    return result


async def _scan_run(client: Client, run: WorkflowExecution, label: str, result: HistoryScan) -> None:
    handle = client.get_workflow_handle(run.id, run_id=run.run_id)
    activities: dict[int, tuple[str, float]] = {}
    activity_started: dict[int, float] = {}
    workflow_tasks: dict[int, float] = {}
    workflow_task_started: dict[int, float] = {}
    count = 0
    async for event in handle.fetch_history_events(page_size=1000):
        count += 1
        moment = event.event_time.ToMicroseconds() / 1e6
        kind = event.WhichOneof("attributes")
        if kind is None:
            continue
        attributes = getattr(event, kind)
        _measure_payloads(event, attributes, label, activities, result)
        action = _ACTIONS.get(kind)
        if action is not None:
            result.count_action(action)
        elif kind == "activity_task_started_event_attributes" and attributes.attempt > 1:
            result.count_action("activity retries")
        if kind == "activity_task_scheduled_event_attributes":
            activities[event.event_id] = (attributes.activity_type.name, moment)
        elif kind == "activity_task_started_event_attributes":
            activity_started[attributes.scheduled_event_id] = moment
        elif kind in _ACTIVITY_CLOSED:
            name, scheduled = activities.get(attributes.scheduled_event_id, ("?", moment))
            began = activity_started.pop(attributes.scheduled_event_id, None)
            result.timings(name).add(
                scheduled, began, moment, _ACTIVITY_CLOSED[kind], f"{label}, event {event.event_id}"
            )
        elif kind == "workflow_task_scheduled_event_attributes":
            workflow_tasks[event.event_id] = moment
        elif kind == "workflow_task_started_event_attributes":
            workflow_task_started[attributes.scheduled_event_id] = moment
        elif kind == "workflow_task_completed_event_attributes":
            scheduled = workflow_tasks.pop(attributes.scheduled_event_id, moment)
            began = workflow_task_started.pop(attributes.scheduled_event_id, None)
            result.timings(WORKFLOW_TASK).add(scheduled, began, moment, "completed")
    result.runs += 1
    result.events += count
    result.longest.offer(count, label)


def _measure_payloads(
    event: HistoryEvent, attributes: Message, label: str, activities: dict[int, tuple[str, float]], result: HistoryScan
) -> None:
    event_type = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    activity = ""
    if hasattr(attributes, "activity_type"):
        activity = f" {attributes.activity_type.name}"
    elif hasattr(attributes, "scheduled_event_id") and event_type.startswith("ACTIVITY"):
        activity = f" {activities.get(attributes.scheduled_event_id, ('?', 0.0))[0]}"
    where = f"{label}, event {event.event_id} {event_type}{activity}"
    result.largest_event.offer(event.ByteSize(), where)
    for size in payload_sizes(attributes):
        result.largest_payload.offer(size, where)
