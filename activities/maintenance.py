"""Activities of the scheduled maintenance workflows.

`WarmupActivities` only needs the database. `FollowUpActivities` also talks to Temporal
(it describes step and campaign workflows and signals campaigns), so the worker hands it
the client it already has; it never sends a message itself. Its database work runs in a
thread so the worker's event loop keeps serving workflow tasks.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from db.engine import SessionFactory, unit_of_work
from db.follow_up import DuePage, DueStep, close_gate, due_steps, open_gate_campaigns, step_positions
from db.warmup import reset_day
from runtime.names import campaign_workflow_id, step_workflow_id
from schemas.enums import CampaignStatus
from schemas.maintenance_io import (
    FollowUpPageInput,
    FollowUpPageResult,
    ReconcilePageResult,
    WarmupResetActivityInput,
    WarmupResetResult,
)
from schemas.signals import LIFECYCLE, RESTART_STEP, Lifecycle, RestartStepSignal


class WarmupActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def reset_warmup(self, request: WarmupResetActivityInput) -> WarmupResetResult:
        """Daily counters start over and warming-up mailboxes move along their ramps."""
        with unit_of_work(self.sessions) as session:
            counts = reset_day(session, request.moment)
        activity.logger.info(
            "warmup reset: %s senders, %s counters reset, %s of %s ramp limits changed",
            counts.senders,
            counts.counters_reset,
            counts.limits_changed,
            counts.warming_up,
        )
        return WarmupResetResult(
            senders=counts.senders,
            counters_reset=counts.counters_reset,
            limits_changed=counts.limits_changed,
            warming_up=counts.warming_up,
        )


class FollowUpActivities:
    def __init__(self, sessions: SessionFactory, client: Client, prefix: str) -> None:
        self.sessions = sessions
        self.client = client
        self.prefix = prefix

    @activity.defn
    async def restart_due_steps(self, request: FollowUpPageInput) -> FollowUpPageResult:
        """One page of steps with due contacts: a step whose workflow is not running gets
        restarted by its campaign; a step of a closed campaign is left to the reconcile pass."""
        page = await asyncio.to_thread(self._due_page, request)
        result = FollowUpPageResult(next_after=page.last_step_id if page.more else None, due_steps=len(page.steps))
        for step in page.steps:
            outcome = await self._restart_if_stopped(step)
            setattr(result, outcome, getattr(result, outcome) + 1)
        return result

    def _due_page(self, request: FollowUpPageInput) -> DuePage:
        with self.sessions() as session:
            return due_steps(session, request.now, after_step_id=request.after_id, limit=request.page_size)

    async def _restart_if_stopped(self, step: DueStep) -> str:
        step_id = step_workflow_id(step.campaign_id, step.position, self.prefix)
        if await self._status(step_id) is WorkflowExecutionStatus.RUNNING:
            return "running"
        campaign_id = campaign_workflow_id(step.campaign_id, self.prefix)
        if await self._status(campaign_id) is not WorkflowExecutionStatus.RUNNING:
            return "campaign_closed"
        activity.logger.info(
            "step %s of campaign %s is not running with %s unplanned and %s stalled contacts: restarting it",
            step.position,
            step.campaign_id,
            step.unplanned,
            step.stalled,
        )
        await self.client.get_workflow_handle(campaign_id).signal(
            RESTART_STEP, RestartStepSignal(position=step.position)
        )
        return "restarted"

    @activity.defn
    async def reconcile_campaigns(self, request: FollowUpPageInput) -> ReconcilePageResult:
        """Campaigns whose gate is open but whose workflow has closed (terminated, failed,
        timed out): the gate closes, so nothing more is sent for them (DESIGN R13)."""
        ids = await asyncio.to_thread(self._open_gates, request)
        closed = 0
        for campaign_id in ids:
            status = await self._status(campaign_workflow_id(campaign_id, self.prefix))
            if status is WorkflowExecutionStatus.RUNNING:
                continue
            completed = status is WorkflowExecutionStatus.COMPLETED
            state = CampaignStatus.COMPLETED if completed else CampaignStatus.CANCELLED
            version, positions = await asyncio.to_thread(self._close_gate, campaign_id, state, request.now)
            if version is None:
                continue
            closed += 1
            activity.logger.warning(
                "campaign %s: workflow is %s but its gate was open; closed it as %s",
                campaign_id,
                status.name.lower() if status else "gone",
                state.value,
            )
            await self._tell_steps(campaign_id, positions, Lifecycle(state=state, version=version))
        next_after = ids[-1] if len(ids) == request.page_size else None
        return ReconcilePageResult(next_after=next_after, checked=len(ids), closed=closed)

    def _open_gates(self, request: FollowUpPageInput) -> list[int]:
        with self.sessions() as session:
            return open_gate_campaigns(session, after_id=request.after_id, limit=request.page_size)

    def _close_gate(self, campaign_id: int, state: CampaignStatus, now: datetime) -> tuple[int | None, list[int]]:
        with unit_of_work(self.sessions) as session:
            return close_gate(session, campaign_id, state, now), step_positions(session, campaign_id)

    async def _tell_steps(self, campaign_id: int, positions: list[int], lifecycle: Lifecycle) -> None:
        """Step workflows still running (their parent is gone) wind down as on a cancel."""
        for position in positions:
            handle = self.client.get_workflow_handle(step_workflow_id(campaign_id, position, self.prefix))
            try:
                await handle.signal(LIFECYCLE, lifecycle)
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise

    async def _status(self, workflow_id: str) -> WorkflowExecutionStatus | None:
        """The latest run's status; None when there is no such workflow."""
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.status
