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
        OPEN_COUNT_CAP,
        DeadLetterInput,
        FetchDueInput,
        FinishStepInput,
        PlanStepInput,
        SendBatchInput,
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
        self.plan_resume = request.plan_resume  # a pass in parts goes on above this contact
        self.pass_previous_finished = request.pass_previous_finished
        self.open_rows = OPEN_COUNT_CAP  # as the last fetch counted them (up to the cap)
        self.plan_in_parts = False
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
        # Sends that finish while a fetch is on its way free room too; counting from the
        # fetch's answer lost them, and with the rest of the window waiting out retries the
        # step sat idle until those retries came due (docs/decisions/0031).
        self.count_from_fetch_start = workflow.patched("count-room-freed-during-a-fetch")
        # A pass over every enrollment plans a part at a time, the next part once the rows
        # planned run low: the first sends start after one part, and planning follows what
        # is due rather than the campaign's size (docs/decisions/0036).
        self.plan_in_parts = workflow.patched("plan-in-parts-as-rows-run-low")
        self._take_over(request.handover)
        while not self.cancelled:
            if self.paused:
                self._report("paused")
                await workflow.wait_condition(lambda: not self.paused)
                continue
            if history_is_long(request.tuning, self.drain_reserve):
                await self._continue_as_new()
            if not self.previous_finished and self._plan_due():
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
        if self._batched:
            self._start_batches(handover, {})
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

    def _plan_due(self) -> bool:
        """A pass in parts goes on once fewer rows are open than a fetch counts; a new pass
        begins on the replan interval."""
        if self.plan_resume is not None:
            return self.open_rows < OPEN_COUNT_CAP
        return self._replan_due()

    async def _plan(self) -> None:
        """Replans read only what the previous step changed since the last one (its cursor);
        every `full_plan_interval_seconds` one reads every enrollment again, in parts."""
        now = workflow.now()
        going_on = self.plan_resume is not None
        if going_on:
            since = None
        else:
            self.last_plan = now
            full = self.last_full_plan is None or (
                (now - self.last_full_plan).total_seconds() >= self.request.tuning.full_plan_interval_seconds
            )
            since = None if full else self.plan_cursor
        result = await workflow.execute_activity_method(
            StepActivities.plan_step,
            PlanStepInput(
                step_id=self.request.step_id,
                now=now,
                since=since,
                resume_after=self.plan_resume,
                budget=self.request.tuning.plan_part if self.plan_in_parts else None,
            ),
            start_to_close_timeout=timedelta(minutes=10),
            summary=f"plan step {self.request.position}"
            + (" (changes only)" if since else f" (contacts after {self.plan_resume})" if going_on else ""),
        )
        self.counters.skipped += result.skipped
        self.open_rows = result.open_rows
        if not going_on:
            if since is None:
                self.last_full_plan = now
            # What the pass's first part read holds for the whole pass: rows that changed
            # while it went on are the next pass's (db.planning.previous_step_cursor).
            self.plan_cursor = result.cursor
            self.pass_previous_finished = result.previous_finished
        self.plan_resume = result.resume_after
        if self.plan_resume is None:
            self.previous_finished = self.pass_previous_finished if self.plan_in_parts else result.previous_finished

    async def _fetch_and_send(self) -> tuple[float | None, int]:
        room = self.request.tuning.send_window - len(self.in_flight)
        self.fetches += 1
        if self.count_from_fetch_start:
            self.completed_since_fetch = 0
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
        if not self.count_from_fetch_start:
            self.completed_since_fetch = 0
        if self._batched:
            self._start_batches(result.execution_ids, dict(zip(result.execution_ids, result.sender_ids, strict=False)))
        else:
            contacts = dict(zip(result.execution_ids, result.contact_ids, strict=False))
            for execution_id in result.execution_ids:
                self.in_flight[execution_id] = asyncio.create_task(self._send(execution_id, contacts.get(execution_id)))
        self._report("sending")
        self.open_rows = result.open_rows
        next_due = seconds_until(result.next_due) if result.next_due else None
        return next_due, result.open_rows

    async def _wait_for_work(self, next_due: float | None) -> None:
        """One interruptible wait: the next due row, a replan tick, freed window room, or
        a lifecycle change, whichever comes first (never a timer per contact)."""
        if (self.cancelled or self.paused) and workflow.patched("lifecycle-change-during-a-fetch-ends-the-wait"):
            # Signalled while the fetch was on its way: the loop acts on it now, not after a
            # wait that only a later change would end (with every send waiting on its row, the
            # next due time may be an hour off).
            return
        room = self.request.tuning.send_window - len(self.in_flight)
        waits = [] if next_due is None or room < self.refill_at else [max(next_due, 0.0)]
        if not self.previous_finished:
            if self.plan_resume is None:
                waits.append(max(self._seconds_to_replan(), 0.0))
            elif self._plan_due():
                return
        if waits and min(waits) <= 0:
            return
        version = self.lifecycle.version
        half = self._half_window

        def woken() -> bool:
            room_freed = self.completed_since_fetch >= half or (not self.in_flight and self.completed_since_fetch)
            if self.count_from_fetch_start and next_due is not None and room < self.refill_at:
                # Rows are due and the window has come back to a fetch's worth of room.
                room_freed = room_freed or self.request.tuning.send_window - len(self.in_flight) >= self.refill_at
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
                heartbeat_timeout=tuning.send_heartbeat_timeout,
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

    @property
    def _batched(self) -> bool:
        return self.request.tuning.send_batch_size > 1

    def _start_batches(self, execution_ids: list[int], senders: dict[int, int]) -> None:
        """Rows of one sender together, in slot order, up to `send_batch_size` a batch."""
        by_sender: dict[int, list[int]] = {}
        for execution_id in execution_ids:
            by_sender.setdefault(senders.get(execution_id, 0), []).append(execution_id)
        size = self.request.tuning.send_batch_size
        for rows in by_sender.values():
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                task = asyncio.create_task(self._send_batch(batch))
                for execution_id in batch:
                    self.in_flight[execution_id] = task

    async def _send_batch(self, execution_ids: list[int]) -> None:
        """One activity for several messages; each comes back with its own outcome. A batch
        that gives up as a whole (its worker lost again and again) leaves its rows to the
        database: each is offered again once its claim or hold runs out."""
        tuning = self.request.tuning
        first, last = execution_ids[0], execution_ids[-1]
        try:
            result = await workflow.execute_activity_method(
                SendActivities.send_batch,
                SendBatchInput(execution_ids=execution_ids, now=workflow.now(), retry=tuning.message_retry()),
                task_queue=channel_queue(self.request.channel, self.request.task_queue_prefix),
                start_to_close_timeout=timedelta(seconds=tuning.send_timeout_seconds * len(execution_ids)),
                heartbeat_timeout=tuning.send_heartbeat_timeout,
                retry_policy=tuning.send_retry_policy(),
                summary=f"step {self.request.position}: send {self.request.channel.value}"
                f" to {len(execution_ids)} contact(s), executions {first}..{last}",
            )
            for item in result.items:
                if item.execution_id not in self.let_go:
                    self._count(item.outcome)
        except ActivityError as error:
            if not (self.let_go_at_once and is_cancelled_exception(error)):
                workflow.logger.warning(
                    "step %s: batch of executions %s..%s gave up (%s); its rows are offered again",
                    self.request.position,
                    first,
                    last,
                    error.cause or error,
                )
        finally:
            for execution_id in execution_ids:
                if self.in_flight.pop(execution_id, None) is not None:
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
            SendOutcome.FAILED: "failed",
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
            # A batch's failed messages wait for their retry on their rows, held by no activity:
            # they are settled with the rest (docs/decisions/0035).
            waiting_of_step = None
            if self.request.tuning.send_batch_size > 1 and workflow.patched("settle-batch-retries-at-cancel"):
                waiting_of_step = self.request.step_id
            # The sends let go of are settled by the first call; each call after it settles the
            # next page of the messages waiting on their rows, each page with its own retries.
            let_go = sorted(self.let_go)
            more_waiting = bool(let_go) or waiting_of_step is not None
            while more_waiting:
                settled = await workflow.execute_activity_method(
                    SendActivities.settle_cancelled,
                    SettleInput(execution_ids=let_go, now=workflow.now(), waiting_of_step=waiting_of_step),
                    task_queue=channel_queue(self.request.channel, self.request.task_queue_prefix),
                    start_to_close_timeout=timedelta(minutes=5),
                    # The provider may not know yet (a lagging search): ask again, for a while.
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=30),
                        maximum_interval=timedelta(minutes=5),
                        maximum_attempts=10,
                    ),
                    summary=f"settle {len(let_go)} cancelled send(s) of step {self.request.position}"
                    + (" and a page of those waiting to retry" if waiting_of_step is not None else ""),
                )
                more_waiting = settled is not None and settled.more_waiting  # None: a result from before pages
                let_go = []
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
                    "plan_resume": self.plan_resume,
                    "pass_previous_finished": self.pass_previous_finished,
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
