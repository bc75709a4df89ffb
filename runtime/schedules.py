"""Outbound's Temporal Schedules: defined once here, created and updated by `sync_schedules`.

Each schedule starts one short maintenance workflow on the campaigns task queue. A run that
would overlap the previous one is skipped, and after downtime a missed run is caught up
once (within a day), never replayed many times over (DESIGN R16). `sync_schedules` is
idempotent: it creates what is missing, updates what changed (keeping an operator's pause
and note), and leaves the rest alone, so it runs on every deploy and on `outbound dev-server`.

Whether a schedule changed is decided by a fingerprint of its definition kept in the
scheduled workflow's memo: the server rewrites cron strings into calendar specs, so the
described schedule can not be compared field by field with what was sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from runtime.names import REPEAT_JOB_WORKFLOW, campaign_queue, job_queue
from runtime.settings import Settings
from runtime.temporal import DATA_CONVERTER
from schemas.jobs import RepeatJobInput
from schemas.jobs_file import JobsFile
from schemas.maintenance_io import FollowUpInput, WarmupResetInput

CATCHUP_WINDOW = timedelta(days=1)
FINGERPRINT_MEMO = "outbound-schedule-fingerprint"


def schedule_id_prefix(prefix: str) -> str:
    """What every Outbound schedule id of one deployment (task-queue prefix) starts with."""
    return f"{prefix}outbound-"


@dataclass(frozen=True)
class OutboundSchedule:
    """One schedule: what it starts, when, and for how long a run may take."""

    name: str
    workflow: str  # the workflow type name (the analytics and retention ones are registered elsewhere)
    args: tuple[Any, ...]
    spec: ScheduleSpec
    summary: str
    run_timeout: timedelta = timedelta(hours=1)
    policy: SchedulePolicy = field(
        default_factory=lambda: SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW)
    )
    job_queue: str | None = None  # a repeatable job's queue: its runs go to that task queue

    def task_queue(self, prefix: str) -> str:
        return job_queue(self.job_queue, prefix) if self.job_queue else campaign_queue(prefix)

    def schedule_id(self, prefix: str = "") -> str:
        return f"{schedule_id_prefix(prefix)}{self.name}"

    def fingerprint(self, prefix: str) -> str:
        payloads = DATA_CONVERTER.payload_converter.to_payloads(list(self.args))
        described = {
            "workflow": self.workflow,
            "args": [payload.data.decode() for payload in payloads],
            "spec": repr(self.spec),
            "queue": self.task_queue(prefix),
            "summary": self.summary,
            "run_timeout": self.run_timeout.total_seconds(),
            "policy": [self.policy.overlap.name, str(self.policy.catchup_window), self.policy.pause_on_failure],
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]

    def schedule(self, prefix: str, state: ScheduleState | None = None) -> Schedule:
        action = ScheduleActionStartWorkflow(
            self.workflow,
            args=list(self.args),
            id=self.schedule_id(prefix),  # the server appends the scheduled time
            task_queue=self.task_queue(prefix),
            execution_timeout=self.run_timeout,
            memo={FINGERPRINT_MEMO: self.fingerprint(prefix)},
            static_summary=self.summary,
        )
        return Schedule(action=action, spec=self.spec, policy=self.policy, state=state or ScheduleState())


def _daily_at(hour: int, minute: int) -> ScheduleSpec:
    return ScheduleSpec(cron_expressions=[f"{minute} {hour} * * *"], time_zone_name="UTC")


SCHEDULES: tuple[OutboundSchedule, ...] = (
    OutboundSchedule(
        name="warmup-reset",
        workflow="WarmupResetWorkflow",
        args=(WarmupResetInput(),),
        # Hourly, so the stored counters and limits follow each sender's own midnight within
        # the hour; the quota claim does not wait for it (it computes the day's limit itself).
        spec=ScheduleSpec(cron_expressions=["0 * * * *"], time_zone_name="UTC"),
        summary="Sender quota counters and warmup limits, each sender on its own day (hourly)",
    ),
    OutboundSchedule(
        name="follow-up",
        workflow="FollowUpWorkflow",
        args=(FollowUpInput(),),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=15))]),
        summary="Follow-up processor: restarts stopped steps with due contacts, reconciles campaigns",
        run_timeout=timedelta(minutes=30),
    ),
    OutboundSchedule(
        name="analytics-hourly",
        workflow="AnalyticsWorkflow",
        args=({"period": "hour"},),
        spec=ScheduleSpec(cron_expressions=["5 * * * *"], time_zone_name="UTC"),
        summary="Analytics: hourly buckets per campaign and step",
    ),
    OutboundSchedule(
        name="analytics-daily",
        workflow="AnalyticsWorkflow",
        args=({"period": "day"},),
        spec=_daily_at(0, 10),
        summary="Analytics: daily buckets per campaign and step (00:10 UTC)",
        run_timeout=timedelta(hours=6),
    ),
    OutboundSchedule(
        name="retention",
        workflow="RetentionWorkflow",
        args=({},),
        spec=_daily_at(3, 30),
        summary="Retention: purge expired details, keep the analytics buckets (03:30 UTC)",
        run_timeout=timedelta(hours=6),
    ),
)


def job_schedules(jobs: JobsFile | None, prefix: str) -> list[OutboundSchedule]:
    """One schedule per repeatable job of the jobs file (BullMQ's repeatable jobs)."""
    schedules = []
    for queue in jobs.queues if jobs else []:
        for repeat in queue.repeat:
            if repeat.every is not None:
                spec = ScheduleSpec(
                    intervals=[ScheduleIntervalSpec(every=timedelta(seconds=repeat.every.approx_seconds))]
                )
            else:
                spec = ScheduleSpec(cron_expressions=[str(repeat.cron)], time_zone_name="UTC")
            schedules.append(
                OutboundSchedule(
                    name=f"job-{queue.name}-{repeat.id}",
                    workflow=REPEAT_JOB_WORKFLOW,
                    args=(RepeatJobInput(queue=queue.name, repeat_id=repeat.id, task_queue_prefix=prefix),),
                    spec=spec,
                    summary=f"Repeatable job {repeat.id} of queue {queue.name}",
                    run_timeout=timedelta(days=1),
                    job_queue=queue.name,
                )
            )
    return schedules


def all_schedules(settings: Settings) -> list[OutboundSchedule]:
    """Outbound's own schedules and the jobs file's repeatable jobs."""
    from runtime.job_queues import configured_jobs

    return [*SCHEDULES, *job_schedules(configured_jobs(settings), settings.task_queue_prefix)]


class SyncAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


@dataclass(frozen=True)
class SyncOutcome:
    schedule_id: str
    workflow: str
    action: SyncAction


async def sync_schedules(
    client: Client, settings: Settings, schedules: Sequence[OutboundSchedule] = SCHEDULES
) -> list[SyncOutcome]:
    """Create the missing schedules, update the changed ones, delete the ones an earlier
    version installed and this one no longer defines; leave everyone else's alone."""
    prefix = settings.task_queue_prefix
    outcomes = [await _sync_one(client, prefix, definition) for definition in schedules]
    wanted = {outcome.schedule_id for outcome in outcomes}
    for schedule_id, workflow in await _obsolete_schedules(client, prefix, wanted):
        await client.get_schedule_handle(schedule_id).delete()
        outcomes.append(SyncOutcome(schedule_id, workflow, SyncAction.DELETED))
    return outcomes


async def _obsolete_schedules(client: Client, prefix: str, wanted: set[str]) -> list[tuple[str, str]]:
    """Schedules of this deployment (id `<prefix>outbound-...`), not among `wanted`, that
    carry Outbound's fingerprint memo: only those are Outbound's to delete; a look-alike
    someone created by hand is not."""
    found = []
    async for listed in await client.list_schedules():
        if listed.id in wanted or not listed.id.startswith(schedule_id_prefix(prefix)):
            continue
        description = await describe_schedule(client, listed.id)
        if description is None or stored_fingerprint(description) is None:
            continue
        action = description.schedule.action
        found.append((listed.id, action.workflow if isinstance(action, ScheduleActionStartWorkflow) else "?"))
    return found


async def _sync_one(client: Client, prefix: str, definition: OutboundSchedule) -> SyncOutcome:
    schedule_id = definition.schedule_id(prefix)
    handle = client.get_schedule_handle(schedule_id)
    description = await describe_schedule(client, schedule_id)
    if description is None:
        await client.create_schedule(schedule_id, definition.schedule(prefix))
        return SyncOutcome(schedule_id, definition.workflow, SyncAction.CREATED)
    if stored_fingerprint(description) == definition.fingerprint(prefix):
        return SyncOutcome(schedule_id, definition.workflow, SyncAction.UNCHANGED)

    def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # The state carries the paused flag and the operator's note: an update keeps them.
        return ScheduleUpdate(schedule=definition.schedule(prefix, current.description.schedule.state))

    await handle.update(replace)
    return SyncOutcome(schedule_id, definition.workflow, SyncAction.UPDATED)


async def describe_schedule(client: Client, schedule_id: str) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(schedule_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def stored_fingerprint(description: ScheduleDescription) -> str | None:
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo:
        return None
    payload = action.memo.get(FINGERPRINT_MEMO)
    if payload is None:
        return None
    if isinstance(payload, str):
        return payload
    value = DATA_CONVERTER.payload_converter.from_payload(payload, str)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ScheduleStatus:
    """What `outbound schedules list` shows of one schedule."""

    schedule_id: str
    workflow: str
    exists: bool
    paused: bool = False
    note: str | None = None
    next_run: datetime | None = None
    last_run: datetime | None = None
    running: int = 0
    current: bool = False  # matches this version's definition


async def schedule_statuses(
    client: Client, settings: Settings, schedules: Sequence[OutboundSchedule] = SCHEDULES
) -> list[ScheduleStatus]:
    statuses = []
    for definition in schedules:
        schedule_id = definition.schedule_id(settings.task_queue_prefix)
        description = await describe_schedule(client, schedule_id)
        if description is None:
            statuses.append(ScheduleStatus(schedule_id, definition.workflow, exists=False))
            continue
        info, state = description.info, description.schedule.state
        statuses.append(
            ScheduleStatus(
                schedule_id,
                definition.workflow,
                exists=True,
                paused=state.paused,
                note=state.note or None,
                next_run=info.next_action_times[0] if info.next_action_times else None,
                last_run=info.recent_actions[-1].scheduled_at if info.recent_actions else None,
                running=len(info.running_actions),
                current=stored_fingerprint(description) == definition.fingerprint(settings.task_queue_prefix),
            )
        )
    return statuses
