"""CampaignStepWorkflow: sends one step of a campaign to every eligible contact.

It plans the step into execution rows, then walks the rows that are due with a bounded
window of send activities, sleeping until the next due time when nothing is due. The
database is the cursor, so the workflow only ever holds a page of ids (DESIGN R1, R5).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.sending import SendActivities
    from activities.stepping import StepActivities
    from runtime.names import campaign_workflow_id, channel_queue
    from schemas.activity_io import (
        DeadLetterInput,
        FetchDueInput,
        FinishStepInput,
        PlanStepInput,
        SendInput,
        SettleInput,
    )
    from schemas.enums import CampaignStatus, SendOutcome
    from schemas.signals import LIFECYCLE, STEP_FINISHED, Lifecycle, StepFinishedSignal
    from schemas.workflow_io import StepCounters, StepInput
    from workflows.common import ACTIVITY_TIMEOUT, Wakeups, history_is_long, local_label, seconds_until


@workflow.defn(name="CampaignStepWorkflow", sandboxed=False)
class CampaignStepWorkflow:
    """Runs outside the SDK's sandbox because it is the hot loop: it wakes for every few
    completed sends, and the sandbox re-enters itself for every payload it converts
    (~1.7 ms of worker CPU per send, a quarter of the total; docs/decisions/0005).
    It stays deterministic by construction: it reads time only through `workflow.now()`,
    draws no randomness, does no I/O, and imports nothing but schemas and names; the
    replay test and `workflow.patched` guard its changes like the sandboxed ones."""

    @workflow.init
    def __init__(self, request: StepInput) -> None:
        self.request = request
        self.lifecycle = request.lifecycle
        self.counters = request.counters.model_copy()
        self.previous_finished = request.previous_finished
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.completed_since_fetch = 0
        self.last_plan: datetime | None = None
        self.plan_cursor = request.plan_cursor
        self.last_full_plan = request.last_full_plan
        self.wakeups = Wakeups()
        self.drain_reserve = 0
        self.refill_at = 1  # free window slots that make a fetch worth its round trip
        self.fetches = 0  # this run's fetch sequence: with the run id, each fetch's claim token
        # Patched behaviour (see `run`): cancel and continue-as-new let go of the sends in
        # flight instead of waiting for them; their rows are settled or handed over.
        self.let_go_at_once = False
        self.let_go: set[int] = set()  # executions whose sends this run no longer waits for

    @workflow.signal(name=LIFECYCLE)
    def on_lifecycle(self, lifecycle: Lifecycle) -> None:
        if lifecycle.version > self.lifecycle.version:
            self.lifecycle = lifecycle

    @workflow.query(name="progress")
    def progress(self) -> StepCounters:
        return self.counters

    @property
    def cancelled(self) -> bool:
        return self.lifecycle.state is CampaignStatus.CANCELLED

    @property
    def paused(self) -> bool:
        return self.lifecycle.state is CampaignStatus.PAUSED

    @workflow.run
    async def run(self, request: StepInput) -> StepCounters:
        if workflow.patched("drain-reserve-before-continue-as-new"):
            # Draining the window before continue-as-new costs ~4 events per send in flight.
            self.drain_reserve = 4 * request.tuning.send_window
        if workflow.patched("fetch-when-half-the-window-is-free"):
            # Refilling the moment any send finished turned into a fetch per ~25 sends while
            # rows were due (the sends that finished during one fetch's round trip); waiting
            # for half the window makes it one fetch per ~100 (docs/decisions/0006).
            self.refill_at = self._half_window
        # Cancel and continue-as-new stop the sends waiting between retries instead of waiting
        # minutes for them: the rows are in the database, so a cancel settles them and the next
        # run takes them over (DESIGN R8, R19; docs/decisions/0001).
        self.let_go_at_once = workflow.patched("let-go-of-sends-waiting-out-retries")
        self._take_over(request.handover)
        while not self.cancelled:
            if self.paused:
                self._report("paused")
                await workflow.wait_condition(lambda: not self.paused)
                continue
            if history_is_long(request.tuning, self.drain_reserve):
                await self._continue_as_new()
            if not self.previous_finished and self._replan_due():
                await self._plan()
            next_due, open_rows = await self._fetch_and_send()
            if self.previous_finished and open_rows == 0 and not self.in_flight:
                break
            await self._wait_for_work(next_due)
        if self.cancelled:
            await self._wind_down_after_cancel()
        else:
            await workflow.wait_condition(lambda: not self.in_flight)
        await workflow.execute_activity_method(
            StepActivities.finish_step,
            FinishStepInput(step_id=request.step_id, now=workflow.now()),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            summary=f"close step {request.position}",
        )
        self._report("finished")
        await self._tell_campaign()
        return self.counters

    @property
    def _half_window(self) -> int:
        """Completed sends that wake the loop, and (patched) free slots worth a fetch."""
        return max(1, self.request.tuning.send_window // 2)

    def _take_over(self, handover: list[int]) -> None:
        """Sends the previous run let go of (waiting between retries, or not started): sent
        first, each within what is left of its attempts (the row counts them). An attempt of
        the previous run that is still running holds the row (`db.sending.claim_retry`), so
        the two never send side by side. After a cancel they are only settled."""
        if self.cancelled:
            self.let_go.update(handover)
            return
        for execution_id in handover:
            self.in_flight[execution_id] = asyncio.create_task(self._send(execution_id, handed_over=True))

    def _replan_due(self) -> bool:
        return self.last_plan is None or self._seconds_to_replan() <= 0

    def _seconds_to_replan(self) -> float:
        if self.last_plan is None:
            return 0.0
        elapsed = (workflow.now() - self.last_plan).total_seconds()
        return self.request.replan_seconds - elapsed

    async def _plan(self) -> None:
        """Replans read only what the previous step changed since the last one (its cursor);
        every `full_plan_interval_seconds` one reads every enrollment again."""
        now = self.last_plan = workflow.now()
        full = self.last_full_plan is None or (
            (now - self.last_full_plan).total_seconds() >= self.request.tuning.full_plan_interval_seconds
        )
        since = None if full else self.plan_cursor
        result = await workflow.execute_activity_method(
            StepActivities.plan_step,
            PlanStepInput(step_id=self.request.step_id, now=now, since=since),
            start_to_close_timeout=timedelta(minutes=10),
            summary=f"plan step {self.request.position}" + (" (changes only)" if since else ""),
        )
        if since is None:
            self.last_full_plan = now
        self.plan_cursor = result.cursor
        self.previous_finished = result.previous_finished
        self.counters.skipped += result.skipped

    async def _fetch_and_send(self) -> tuple[float | None, int]:
        room = self.request.tuning.send_window - len(self.in_flight)
        self.fetches += 1
        result = await workflow.execute_activity_method(
            StepActivities.fetch_due,
            FetchDueInput(
                step_id=self.request.step_id,
                now=workflow.now(),
                limit=max(room, 0),
                lease_seconds=self.request.tuning.lease_seconds,
                exclude=sorted(self.in_flight),
                claim_token=f"{workflow.info().run_id}:{self.fetches}",
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        self.completed_since_fetch = 0
        contacts = dict(zip(result.execution_ids, result.contact_ids, strict=False))
        for execution_id in result.execution_ids:
            self.in_flight[execution_id] = asyncio.create_task(self._send(execution_id, contacts.get(execution_id)))
        self._report("sending")
        next_due = seconds_until(result.next_due) if result.next_due else None
        return next_due, result.open_rows

    async def _wait_for_work(self, next_due: float | None) -> None:
        """One interruptible wait: the next due row, a replan tick, freed window room, or
        a lifecycle change, whichever comes first (never a timer per contact)."""
        room = self.request.tuning.send_window - len(self.in_flight)
        waits = [] if next_due is None or room < self.refill_at else [max(next_due, 0.0)]
        if not self.previous_finished:
            waits.append(max(self._seconds_to_replan(), 0.0))
        if waits and min(waits) <= 0:
            return
        version = self.lifecycle.version
        half = self._half_window

        def woken() -> bool:
            room_freed = self.completed_since_fetch >= half or (not self.in_flight and self.completed_since_fetch)
            return (
                bool(room_freed)
                or self.lifecycle.version != version
                or history_is_long(self.request.tuning, self.drain_reserve)
            )

        until = workflow.now() + timedelta(seconds=min(waits)) if waits else None
        summary = f"next send due at {local_label(until)}" if until else None
        await self.wakeups.wait(woken, until, summary)

    async def _send(self, execution_id: int, contact_id: int | None = None, *, handed_over: bool = False) -> None:
        """One send; its summary names the execution and the contact (by id, never PII).

        A send this run let go of (cancel, continue-as-new) is not its to judge any more: a
        late failure is not dead-lettered, the settle or the next run decides the row."""
        who = f"execution {execution_id}" + (f" to contact {contact_id}" if contact_id is not None else "")
        tuning = self.request.tuning
        try:
            result = await workflow.execute_activity_method(
                SendActivities.send_message,
                SendInput(
                    execution_id=execution_id,
                    now=workflow.now(),
                    attempt_budget=tuning.retry_maximum_attempts if handed_over else None,
                ),
                task_queue=channel_queue(self.request.channel, self.request.task_queue_prefix),
                start_to_close_timeout=timedelta(seconds=tuning.send_timeout_seconds),
                retry_policy=tuning.send_retry_policy(),
                summary=f"step {self.request.position}: send {self.request.channel.value} {who}"
                + (" (taken over from the previous run)" if handed_over else ""),
            )
            self._count(result.outcome)
        except ActivityError as error:
            if execution_id in self.let_go or (self.let_go_at_once and is_cancelled_exception(error)):
                self.let_go.add(execution_id)
            else:
                await self._dead_letter(execution_id, error, who, handed_over=handed_over)
        finally:
            self.in_flight.pop(execution_id, None)
            self.completed_since_fetch += 1

    def _let_go_of_sends(self) -> None:
        """Stop waiting for the sends in flight. Their activities stay scheduled until this
        run closes (then the server drops them); each row is in the database, held by its
        running attempt if one runs, so the settle or the next run can take it from there."""
        self.let_go.update(self.in_flight)
        self.in_flight.clear()

    def _count(self, outcome: SendOutcome) -> None:
        field = {
            SendOutcome.SENT: "sent",
            SendOutcome.HELD: "held",
            SendOutcome.DEFERRED: "deferred",
            SendOutcome.RESLOTTED: "reslotted",
            SendOutcome.SKIPPED: "skipped",
        }.get(outcome)
        if field:
            setattr(self.counters, field, getattr(self.counters, field) + 1)

    async def _dead_letter(
        self, execution_id: int, error: ActivityError, who: str, *, handed_over: bool = False
    ) -> None:
        cause = error.cause
        error_type = cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
        # Exactly the policy's attempts when they ran out in this run; otherwise the row's own
        # count (every attempt counts itself on the row) is the real one.
        exhausted = error.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED and not handed_over
        await workflow.execute_activity_method(
            StepActivities.dead_letter,
            DeadLetterInput(
                execution_id=execution_id,
                error_type=error_type or "Error",
                message=(message or "")[:2000],
                attempts=self.request.tuning.retry_maximum_attempts if exhausted else 0,
                retry_state=error.retry_state.name if error.retry_state else None,
                now=workflow.now(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            summary=f"dead-letter {who}: {error_type or 'Error'}",
        )
        self.counters.failed += 1

    async def _wind_down_after_cancel(self) -> None:
        """Sends already running finish; those waiting out a retry backoff (or not started)
        are let go of and their rows settled at once from what the provider knows: SENT or
        CANCELLED, never FAILED, never left SENDING (DESIGN R8). Closing this run drops their
        pending retries; a retry that runs before that finds its row closed and sends nothing."""
        if self.let_go_at_once:
            self._let_go_of_sends()
            if self.let_go:
                await workflow.execute_activity_method(
                    SendActivities.settle_cancelled,
                    SettleInput(execution_ids=sorted(self.let_go), now=workflow.now()),
                    task_queue=channel_queue(self.request.channel, self.request.task_queue_prefix),
                    start_to_close_timeout=timedelta(minutes=5),
                    # The provider may not know yet (a lagging search): ask again, for a while.
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=30),
                        maximum_interval=timedelta(minutes=5),
                        maximum_attempts=10,
                    ),
                    summary=f"settle {len(self.let_go)} cancelled send(s) of step {self.request.position}",
                )
            return
        # Histories from before the patch: a grace period, then a cancel that did not wait.
        deadline = workflow.now() + timedelta(seconds=self.request.tuning.cancel_grace_seconds)
        while self.in_flight and workflow.now() < deadline:
            await self.wakeups.wait(lambda: not self.in_flight, deadline, "grace period for sends after cancel")
        if self.in_flight:
            pending = sorted(self.in_flight)
            for task in self.in_flight.values():
                task.cancel()
            await workflow.execute_activity_method(
                SendActivities.settle_cancelled,
                SettleInput(execution_ids=pending, now=workflow.now()),
                task_queue=channel_queue(self.request.channel, self.request.task_queue_prefix),
                start_to_close_timeout=timedelta(minutes=5),
            )

    async def _continue_as_new(self) -> None:
        self._report("continuing as new")
        handover: list[int] = []
        if self.let_go_at_once and self.request.tuning.hand_over_at_continue_as_new:
            # Do not wait minutes for sends between retries: the next run takes them over.
            self._let_go_of_sends()
            handover = sorted(self.let_go)
        await workflow.wait_condition(lambda: not self.in_flight and workflow.all_handlers_finished())
        workflow.continue_as_new(
            self.request.model_copy(
                update={
                    "lifecycle": self.lifecycle,
                    "counters": self.counters,
                    "previous_finished": self.previous_finished,
                    "plan_cursor": self.plan_cursor,
                    "last_full_plan": self.last_full_plan,
                    "run": self.request.run + 1,
                    "handover": handover,
                }
            )
        )

    async def _tell_campaign(self) -> None:
        handle = workflow.get_external_workflow_handle(
            campaign_workflow_id(self.request.campaign_id, self.request.task_queue_prefix)
        )
        try:
            await handle.signal(
                STEP_FINISHED, StepFinishedSignal(position=self.request.position, cancelled=self.cancelled)
            )
        except Exception:  # the campaign already closed: nothing left to tell
            workflow.logger.info("campaign %s is closed; step end not reported", self.request.campaign_id)

    def _report(self, phase: str) -> None:
        c = self.counters
        workflow.set_current_details(
            f"Step {self.request.position} ({self.request.channel.value}),"
            f" starts {self.request.start_label or local_label(self.request.start_at)}"
            f" — {phase}: {c.sent} sent, {len(self.in_flight)} in flight, {c.deferred} deferred,"
            f" {c.held} held, {c.skipped} skipped, {c.failed} failed"
        )
