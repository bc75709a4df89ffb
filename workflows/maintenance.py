"""Maintenance workflows started by Outbound's Temporal Schedules (runtime/schedules.py).

Both are short, idempotent passes: the schedule skips a run while one is still going and
catches up once after downtime, and a repeated run changes nothing (DESIGN R16). They take
"now" from the scheduled start, so a late or re-triggered run works on the day it was for.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.maintenance import FollowUpActivities, WarmupActivities
    from schemas.maintenance_io import (
        FollowUpInput,
        FollowUpPageInput,
        FollowUpResult,
        WarmupResetActivityInput,
        WarmupResetInput,
        WarmupResetResult,
    )
    from workflows.scheduled import scheduled_start

PASS_TIMEOUT = timedelta(minutes=5)


@workflow.defn(name="WarmupResetWorkflow")
class WarmupResetWorkflow:
    """Hourly: every mailbox's counter starts over once its own day is over, and
    each warming-up mailbox gets its ramp's limit for that day."""

    @workflow.run
    async def run(self, request: WarmupResetInput) -> WarmupResetResult:
        moment = scheduled_start()
        result = await workflow.execute_activity_method(
            WarmupActivities.reset_warmup,
            WarmupResetActivityInput(moment=moment),
            start_to_close_timeout=PASS_TIMEOUT,
            summary=f"reset sender quotas and warmup limits for {moment:%Y-%m-%d}",
        )
        workflow.set_current_details(
            f"{result.counters_reset} of {result.senders} counters reset,"
            f" {result.limits_changed} of {result.warming_up} warmup limits changed"
        )
        return result


@workflow.defn(name="FollowUpWorkflow")
class FollowUpWorkflow:
    """Every 15 minutes: steps with contacts due but no running step workflow are restarted
    by their campaign (it never sends itself), and campaigns whose workflow closed without
    closing their gate get it closed (the reconcile pass, DESIGN R13)."""

    @workflow.run
    async def run(self, request: FollowUpInput) -> FollowUpResult:
        now = scheduled_start()
        total = FollowUpResult()
        after: int | None = 0
        while after is not None:
            page = await workflow.execute_activity_method(
                FollowUpActivities.restart_due_steps,
                FollowUpPageInput(now=now, after_id=after, page_size=request.page_size),
                start_to_close_timeout=PASS_TIMEOUT,
                summary=f"find due follow-ups after step {after}",
            )
            total.due_steps += page.due_steps
            total.restarted += page.restarted
            total.running += page.running
            total.campaign_closed += page.campaign_closed
            after = page.next_after
        after = 0
        while after is not None:
            checked = await workflow.execute_activity_method(
                FollowUpActivities.reconcile_campaigns,
                FollowUpPageInput(now=now, after_id=after, page_size=request.page_size),
                start_to_close_timeout=PASS_TIMEOUT,
                summary=f"reconcile open campaigns after {after}",
            )
            total.campaigns_checked += checked.checked
            total.gates_closed += checked.closed
            after = checked.next_after
        workflow.set_current_details(
            f"{total.due_steps} steps with due contacts: {total.restarted} restarted, {total.running} running;"
            f" {total.gates_closed} of {total.campaigns_checked} open campaigns closed"
        )
        return total
