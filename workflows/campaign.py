"""CampaignWorkflow: the life of one campaign, from launch to the last step.

It waits out the start delay, enrolls the contacts, then sleeps until each step's start
and launches that step's workflow, without waiting for the previous step to finish.
It is the authority for the lifecycle: pause, resume and cancel arrive as signals, are
committed to the database gate first and then passed on to the step workflows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    Priority,
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.campaign import CampaignActivities
    from activities.contact_jobs import ContactJobActivities
    from runtime.names import (
        BULK_JOB_WORKFLOW,
        CAMPAIGN_ID,
        CAMPAIGN_STATUS,
        CAMPAIGN_WORKFLOW,
        CHANNEL,
        JOB_QUEUE,
        JOB_STATUS,
        campaign_queue,
        channel_queue,
        job_queue,
        job_workflow_id,
        step_workflow_id,
    )
    from schemas.activity_io import (
        ApplyVerificationInput,
        ContactsJobInput,
        ContactsJobPlan,
        LifecycleInput,
        PrepareCampaignInput,
        SettleCampaignInput,
        StopContactInput,
    )
    from schemas.enums import CampaignStatus
    from schemas.signals import (
        CANCEL,
        CANCEL_UPDATE,
        CONTACT_REPLIED,
        LIFECYCLE,
        PAUSE,
        PAUSE_UPDATE,
        RESTART_STEP,
        RESUME,
        RESUME_UPDATE,
        STATUS_QUERY,
        STEP_FINISHED,
        CancelSignal,
        ContactRepliedSignal,
        Lifecycle,
        LifecycleAck,
        PauseSignal,
        RestartStepSignal,
        ResumeSignal,
        StepFinishedSignal,
    )
    from schemas.workflow_io import (
        CampaignInput,
        CampaignProgress,
        CampaignState,
        PendingReslot,
        StepInput,
        StepPlan,
    )
    from workflows.common import ACTIVITY_TIMEOUT, Wakeups, history_is_long, local_label, seconds_until
    from workflows.step import CampaignStepWorkflow


# Activities started from signal and update handlers give up after a bounded time: one that
# retried forever would keep the handler, and so the campaign, from ever finishing.
HANDLER_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=8)
# The lifecycle's own writes (the gate, then the batches) may wait out a database outage.
LIFECYCLE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=40)


@workflow.defn(name=CAMPAIGN_WORKFLOW)
class CampaignWorkflow:
    @workflow.init
    def __init__(self, request: CampaignInput) -> None:
        self.request = request
        self.state = request.state or CampaignState()
        self.lock = asyncio.Lock()
        self.wakeups = Wakeups()
        # What the campaign sleeps towards ("step 2 (sms) at ..."), kept in the current
        # details whenever they are refreshed (a step finishing must not hide it).
        self.waiting_for: str | None = None
        # Lifecycle changes commit the one-row gate first and settle or re-slot the open rows
        # afterwards in batches (DESIGN R20); the enrollment activity is let finish when the
        # workflow is cancelled during it. Off in histories from before.
        self.gate_first = workflow.patched("lifecycle-gate-first-then-batches")
        # A resume answers once its gate is committed and the steps are told; its batches
        # re-slot the waiting rows afterwards, one resume at a time, while sending goes on
        # (`db.planning.fetch_due` counts slots late by the paused time meanwhile).
        self.reslot_in_background = self.gate_first and workflow.patched("resume-reslots-in-the-background")

    # --- the business process -------------------------------------------------------

    @workflow.run
    async def run(self, request: CampaignInput) -> CampaignProgress:
        if self.reslot_in_background:
            reslots = asyncio.create_task(self._reslot_after_resumes())
        try:
            await self._run_campaign()
        except BaseException as error:
            if not self._cancelled_from_outside(error):
                raise
            # `temporal workflow cancel` takes the same path as the cancel signal.
            await self._change_lifecycle(CampaignStatus.CANCELLED)
            await self._wait_for_steps()
            await self._finish()
        if self.reslot_in_background:
            reslots.cancel()
        return self.status()

    def _cancelled_from_outside(self, error: BaseException) -> bool:
        """A workflow cancel reaches the workflow as asyncio's CancelledError, or, when it
        arrives while an activity runs, as that activity's cancellation (an ActivityError),
        which older code let end the workflow with the database still ACTIVE."""
        if isinstance(error, asyncio.CancelledError):
            return True
        return is_cancelled_exception(error) and workflow.patched("workflow-cancel-while-an-activity-runs")

    async def _run_campaign(self) -> None:
        if self.state.launched_at is None:
            self.state.launched_at = workflow.now()
            self.state.start_at = workflow.now() + timedelta(seconds=self.request.start_delay_seconds)
            self._publish()
        assert self.state.start_at is not None
        await self._sleep_until(lambda: self.state.start_at, "launch")
        if not self.cancelled and not self.state.prepared:
            await self._prepare()
            if self.gate_first and workflow.cancellation_reason() is not None:
                # Cancelled while enrolling: enrollment was let finish (so the cancel can
                # settle every pair it made) and the cancel now takes its usual path.
                raise asyncio.CancelledError()
        if self.state.verify_first and not self.state.verified and not self.cancelled:
            await self._verify_contacts()
        if self.state.write_first and not self.state.written and not self.cancelled:
            await self._write_texts()
        for plan in self.state.steps:
            if plan.started:
                continue
            await self._sleep_until(
                lambda plan=plan: plan.start_at,
                f"step {plan.position} ({plan.channel.value})",
                lambda plan=plan: plan.start_label,  # type: ignore[misc]
            )
            if self.cancelled:
                break
            await self._start_step(plan)
        await self._wait_for_steps()
        await self._finish()

    async def _prepare(self) -> None:
        assert self.state.start_at is not None
        result = await workflow.execute_activity_method(
            CampaignActivities.prepare_campaign,
            PrepareCampaignInput(
                campaign_id=self.request.campaign_id,
                now=workflow.now(),
                start_at=self.state.start_at,
                version=self.state.lifecycle.version,
            ),
            start_to_close_timeout=timedelta(minutes=10),
            cancellation_type=(
                ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if self.gate_first
                else ActivityCancellationType.TRY_CANCEL
            ),
            summary="enroll contacts and schedule the steps",
        )
        self.state.steps = result.steps
        self.state.enrolled = result.counts.enrolled
        self.state.verify_first = result.verify_first
        self.state.write_first = result.write_first
        self.state.prepared = True
        self._publish()

    async def _verify_contacts(self) -> None:
        """The campaign's `verification:`: contacts without a recent verdict are verified by
        a bulk job on the verify-email queue, then those whose verdict fails the requirement
        skip every step."""
        self.waiting_for = "the verification of the contacts' addresses"
        plan = await workflow.execute_activity_method(
            ContactJobActivities.plan_verification,
            self._contacts_job_input(),
            start_to_close_timeout=timedelta(minutes=10),
            summary="write the job that verifies the contacts' addresses",
        )
        if plan is not None:
            await self._run_contacts_job(plan, f"Verify {plan.contacts:,} addresses")
        if not self.cancelled:
            await workflow.execute_activity_method(
                ContactJobActivities.apply_verification,
                ApplyVerificationInput(campaign_id=self.request.campaign_id),
                start_to_close_timeout=timedelta(minutes=10),
                summary="skip the contacts whose address fails the campaign's verification",
            )
        self.waiting_for = None
        self.state.verified = True
        self._publish()

    async def _write_texts(self) -> None:
        """The campaign's `ai:` texts: a model writes them for the enrolled contacts that lack
        them, by a bulk job on the ai queue; a contact it could not write for gets the
        default when its message is composed."""
        self.waiting_for = "the texts a model writes for the contacts"
        plan = await workflow.execute_activity_method(
            ContactJobActivities.plan_writing,
            self._contacts_job_input(),
            start_to_close_timeout=timedelta(minutes=10),
            summary="write the job in which a model writes the contacts' ai texts",
        )
        if plan is not None:
            await self._run_contacts_job(plan, f"Write the ai texts of {plan.contacts:,} contacts")
        self.waiting_for = None
        self.state.written = True
        self._publish()

    def _contacts_job_input(self) -> ContactsJobInput:
        prefix = self.request.task_queue_prefix
        return ContactsJobInput(campaign_id=self.request.campaign_id, now=workflow.now(), task_queue_prefix=prefix)

    async def _run_contacts_job(self, plan: ContactsJobPlan, summary: str) -> None:
        """A bulk job over the campaign's contacts, as a child on its own queue (visible and
        counted like any job), waited for before the first step. A cancel stops the waiting;
        the job, abandoned, still finishes its items."""
        prefix = self.request.task_queue_prefix
        try:
            job = await workflow.start_child_workflow(
                BULK_JOB_WORKFLOW,
                plan.bulk,
                id=job_workflow_id(plan.queue, plan.job_key, prefix),
                task_queue=job_queue(plan.queue, prefix),
                priority=Priority(priority_key=plan.priority),
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(JOB_QUEUE, plan.queue), SearchAttributePair(JOB_STATUS, "active")]
                ),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"{summary} of campaign {self.request.campaign_id}",
                static_details=f"Row {plan.bulk.job_id} of the jobs table; `outbound jobs show"
                f" {plan.bulk.job_id}` counts its items. The campaign's first step waits for it.",
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.warning("the job %s ran before; what it did stands", plan.job_key)
            return
        await workflow.wait_condition(lambda: job.done() or self.cancelled)
        if job.done() and job.exception() is not None:
            workflow.logger.warning("the job %s failed: %s", plan.job_key, job.exception())

    async def _start_step(
        self, plan: StepPlan, reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE
    ) -> None:
        replan = max(1, min(plan.wait_seconds or 5, self.request.tuning.replan_interval_seconds))
        try:
            await workflow.start_child_workflow(
                CampaignStepWorkflow.run,
                StepInput(
                    campaign_id=self.request.campaign_id,
                    step_id=plan.step_id,
                    position=plan.position,
                    channel=plan.channel,
                    start_at=plan.start_at,
                    lifecycle=self.state.lifecycle,
                    task_queue_prefix=self.request.task_queue_prefix,
                    tuning=self.request.tuning,
                    replan_seconds=replan,
                    start_label=plan.start_label,
                ),
                id=step_workflow_id(self.request.campaign_id, plan.position, self.request.task_queue_prefix),
                task_queue=campaign_queue(self.request.task_queue_prefix),
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=reuse,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(CAMPAIGN_ID, str(self.request.campaign_id)),
                        SearchAttributePair(CHANNEL, plan.channel.value),
                    ]
                ),
                static_summary=f"Step {plan.position} of campaign {self.request.campaign_id} ({plan.channel.value})",
                static_details=(
                    f"Sends the {plan.channel.value} step {plan.position} of campaign {self.request.campaign_id},"
                    f" starting {plan.start_label or local_label(plan.start_at)}, through the"
                    f" `{channel_queue(plan.channel, self.request.task_queue_prefix)}` task queue."
                    " Contacts are named by id; `outbound campaign status` has the counts."
                ),
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("step %s of campaign %s already started", plan.position, self.request.campaign_id)
        plan.started = True
        self._publish()

    async def _wait_for_steps(self) -> None:
        """Until every started step reports back; after a cancel, for a bounded time."""

        def all_done() -> bool:
            return all(plan.finished for plan in self.state.steps if plan.started)

        while not all_done():
            if self.cancelled:
                deadline = workflow.now() + timedelta(seconds=self.request.tuning.cancel_grace_seconds + 120)
                while not all_done() and workflow.now() < deadline:
                    await self.wakeups.wait(all_done, deadline, "steps confirming the cancel")
                if not all_done():
                    workflow.logger.warning("steps did not confirm the cancel in time")
                return
            await self._maybe_continue_as_new()
            await workflow.wait_condition(lambda: all_done() or self.cancelled or history_is_long(self.request.tuning))

    async def _reslot_after_resumes(self) -> None:
        """The background half of each resume, in order (see `reslot_in_background`)."""
        while True:
            await workflow.wait_condition(lambda: bool(self.state.pending_reslots))
            pending = self.state.pending_reslots[0]
            await self._settle(
                SettleCampaignInput(
                    campaign_id=self.request.campaign_id,
                    state=CampaignStatus.ACTIVE,
                    now=pending.resumed_at,
                    paused_at=pending.paused_at,
                )
            )
            self.state.pending_reslots.pop(0)

    async def _finish(self) -> None:
        await workflow.wait_condition(lambda: not self.lock.locked() and not self.state.pending_reslots)
        if not self.cancelled:
            await self._change_lifecycle(CampaignStatus.COMPLETED)
        elif self.gate_first:
            # The steps have stopped (or did not confirm in time): close what is still open.
            await self._settle(
                SettleCampaignInput(
                    campaign_id=self.request.campaign_id, state=CampaignStatus.CANCELLED, now=workflow.now()
                )
            )
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _settle(self, request: SettleCampaignInput) -> None:
        """The bulk half of a lifecycle change, in batches (DESIGN R20). If it gives up, the
        gate still holds: nothing is sent against the decision; the rows just wait unsettled."""
        what = "close the open rows" if request.state is CampaignStatus.CANCELLED else "re-slot the open rows"
        try:
            await workflow.execute_activity_method(
                CampaignActivities.settle_lifecycle,
                request,
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=LIFECYCLE_RETRY,
                summary=f"campaign {self.request.campaign_id}: {what}",
            )
        except ActivityError as error:
            workflow.logger.error("campaign %s: could not %s: %s", self.request.campaign_id, what, error.cause)

    # --- durable, interruptible waiting ----------------------------------------------

    async def _sleep_until(self, moment: object, label: str, local: Callable[[], str | None] | None = None) -> None:
        """Sleep until `moment()` (it moves when a pause shifts the schedule); hold while
        paused; return at once on cancel. One timer at a time, never one per contact.

        `local()` is the moment in the campaign's time zone when an activity labelled it
        (the sandbox cannot); the timer and the current details show it, else UTC."""
        assert callable(moment)
        while not self.cancelled:
            if self.paused:
                workflow.set_current_details(f"Paused before {label}")
                await workflow.wait_condition(lambda: not self.paused)
                continue
            await self._maybe_continue_as_new()
            target = moment()
            remaining = seconds_until(target)
            if remaining <= 0:
                return
            when = (local() if local else None) or local_label(target)
            self.waiting_for = f"{label} at {when}"
            workflow.set_current_details(self._progress())
            try:
                await self.wakeups.wait(
                    self._lifecycle_changed_or_history_long(), target, f"wait until {label} at {when}"
                )
            finally:
                self.waiting_for = None

    def _lifecycle_changed_or_history_long(self) -> Callable[[], bool]:
        version = self.state.lifecycle.version
        return lambda: self.state.lifecycle.version != version or history_is_long(self.request.tuning)

    async def _maybe_continue_as_new(self) -> None:
        if not history_is_long(self.request.tuning):
            return
        await workflow.wait_condition(
            lambda: not self.lock.locked() and workflow.all_handlers_finished() and not self.state.pending_reslots
        )
        workflow.continue_as_new(self.request.model_copy(update={"state": self.state}))

    # --- lifecycle -------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self.state.lifecycle.state is CampaignStatus.CANCELLED

    @property
    def paused(self) -> bool:
        return self.state.lifecycle.state is CampaignStatus.PAUSED

    @workflow.signal(name=PAUSE)
    async def pause(self, signal: PauseSignal) -> None:
        if self.state.lifecycle.state is CampaignStatus.ACTIVE:
            await self._change_lifecycle(CampaignStatus.PAUSED)

    @workflow.signal(name=RESUME)
    async def resume(self, signal: ResumeSignal) -> None:
        if self.paused:
            await self._change_lifecycle(CampaignStatus.ACTIVE)

    @workflow.signal(name=CANCEL)
    async def cancel(self, signal: CancelSignal) -> None:
        if not self.state.lifecycle.state.finished:
            await self._change_lifecycle(CampaignStatus.CANCELLED)

    # The same three as Workflow Updates (DESIGN R2): a validator refuses what the state
    # forbids before anything is written to history, and the answer comes once the gate is
    # committed, so the CLI needs one round trip instead of query + describe + signal.

    @workflow.update(name=PAUSE_UPDATE)
    async def pause_update(self, request: PauseSignal) -> LifecycleAck:
        await self.pause(request)
        return self._ack()

    @pause_update.validator
    def _validate_pause(self, request: PauseSignal) -> None:
        self._refuse_unless(CampaignStatus.ACTIVE, "pause")

    @workflow.update(name=RESUME_UPDATE)
    async def resume_update(self, request: ResumeSignal) -> LifecycleAck:
        await self.resume(request)
        return self._ack()

    @resume_update.validator
    def _validate_resume(self, request: ResumeSignal) -> None:
        self._refuse_unless(CampaignStatus.PAUSED, "resume")

    @workflow.update(name=CANCEL_UPDATE)
    async def cancel_update(self, request: CancelSignal) -> LifecycleAck:
        await self.cancel(request)
        return self._ack()

    @cancel_update.validator
    def _validate_cancel(self, request: CancelSignal) -> None:
        if self.state.lifecycle.state.finished:
            current = self.state.lifecycle.state.value
            raise ValueError(f"campaign {self.request.campaign_id} is {current}; it cannot cancel")

    def _refuse_unless(self, state: CampaignStatus, verb: str) -> None:
        current = self.state.lifecycle.state
        if current is not state:
            raise ValueError(f"campaign {self.request.campaign_id} is {current.value}; it cannot {verb}")

    def _ack(self) -> LifecycleAck:
        lifecycle = self.state.lifecycle
        return LifecycleAck(campaign_id=self.request.campaign_id, state=lifecycle.state, version=lifecycle.version)

    @workflow.signal(name=CONTACT_REPLIED)
    async def contact_replied(self, signal: ContactRepliedSignal) -> None:
        """Stops the contact in every campaign (a database write the send gate obeys). Bad
        input (no such contact) is logged and dropped; the retries are bounded, so the
        handler always ends and the campaign can still finish or continue as new."""
        if signal.event_id and signal.event_id in self.state.handled_events:
            return
        try:
            await workflow.execute_activity_method(
                CampaignActivities.stop_contact,
                StopContactInput(contact_id=signal.contact_id, reason=signal.reason, now=workflow.now()),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=HANDLER_RETRY,
                summary=f"stop contact {signal.contact_id}: {signal.reason.value}",
            )
        except ActivityError as error:
            # Ids only: the contact id and the error type, never an address.
            cause = error.cause
            kind = getattr(cause, "type", None) or type(cause).__name__
            workflow.logger.warning(
                "contact_replied for contact %s not applied (%s): %s", signal.contact_id, kind, cause
            )
            return
        if signal.event_id:
            self.state.handled_events = [*self.state.handled_events[-199:], signal.event_id]

    @workflow.signal(name=STEP_FINISHED)
    def step_finished(self, signal: StepFinishedSignal) -> None:
        for plan in self.state.steps:
            if plan.position == signal.position:
                plan.finished = True
        self._publish()

    @workflow.signal(name=RESTART_STEP)
    async def restart_step(self, signal: RestartStepSignal) -> None:
        """From the follow-up processor: contacts are due for a started step whose workflow
        is no longer running (terminated, failed). Start it again under the same id; a
        running one is left alone, and planning is INSERT ... ON CONFLICT DO NOTHING, so no
        contact gets the step twice (DESIGN R1, R13)."""
        plan = next((plan for plan in self.state.steps if plan.position == signal.position), None)
        if plan is None or not plan.started or self.state.lifecycle.state.finished:
            return  # not started yet (this workflow starts it at its time) or nothing left to do
        workflow.logger.info("restarting step %s of campaign %s", plan.position, self.request.campaign_id)
        plan.finished = False  # the restarted run reports back when it is done
        await self._start_step(plan, WorkflowIDReusePolicy.ALLOW_DUPLICATE)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> CampaignProgress:
        return CampaignProgress(
            campaign_id=self.request.campaign_id,
            lifecycle=self.state.lifecycle,
            start_at=self.state.start_at,
            enrolled=self.state.enrolled,
            steps=self.state.steps,
            paused_since=self.state.paused_at,
            paused_seconds=self.state.paused_seconds,
        )

    async def _change_lifecycle(self, target: CampaignStatus) -> None:
        """Decide in memory, commit the gate, then tell the running steps (DESIGN R2, R4)."""
        async with self.lock:
            previous = self.state.lifecycle
            if previous.state.finished or previous.state is target:
                return
            now = workflow.now()
            self.state.lifecycle = Lifecycle(state=target, version=previous.version + 1)
            request = LifecycleInput(
                campaign_id=self.request.campaign_id, state=target, version=self.state.lifecycle.version, now=now
            )
            if target is CampaignStatus.PAUSED:
                self.state.paused_at = now
            elif previous.state is CampaignStatus.PAUSED and self.state.paused_at is not None:
                request = request.model_copy(update={"paused_at": self.state.paused_at})
                request.shifted_steps.extend(self._shift_unstarted_steps(now - self.state.paused_at))
                self.state.paused_seconds += (now - self.state.paused_at).total_seconds()
                self.state.paused_at = None
            self._publish()
            if not self.gate_first:
                result = await workflow.execute_activity_method(
                    CampaignActivities.apply_lifecycle,
                    request,
                    start_to_close_timeout=timedelta(minutes=10),
                    summary=f"campaign {target.value.lower()}",
                )
            else:
                try:
                    result = await workflow.execute_activity_method(
                        CampaignActivities.apply_lifecycle,
                        request.model_copy(update={"gate_only": True}),
                        start_to_close_timeout=ACTIVITY_TIMEOUT,
                        retry_policy=LIFECYCLE_RETRY,
                        summary=f"campaign {target.value.lower()}",
                    )
                except ActivityError as error:
                    # The steps still obey the decision (they are told below); the database
                    # gate is written again with the next change or the reconcile pass.
                    workflow.logger.error("campaign %s: gate not committed: %s", self.request.campaign_id, error.cause)
                    result = None
                if request.paused_at is not None and target is CampaignStatus.ACTIVE:
                    if self.reslot_in_background:
                        self.state.pending_reslots.append(PendingReslot(paused_at=request.paused_at, resumed_at=now))
                    else:
                        # Before the steps hear of the resume, so none fetches from a half-moved step.
                        await self._settle(
                            SettleCampaignInput(
                                campaign_id=self.request.campaign_id,
                                state=target,
                                now=now,
                                paused_at=request.paused_at,
                            )
                        )
                elif target is CampaignStatus.CANCELLED:
                    del self.state.pending_reslots[1:]  # the cancel closes those rows; one may be running
            labels = result.start_labels if result else {}  # None in histories from before the result
            for plan in self.state.steps:
                plan.start_label = labels.get(plan.step_id, plan.start_label)
            await self._tell_steps()

    def _shift_unstarted_steps(self, paused: timedelta) -> list[StepPlan]:
        shifted = []
        for plan in self.state.steps:
            if not plan.started:
                plan.start_at = plan.start_at + paused
                plan.start_label = None  # no longer true; apply_lifecycle labels the new start
                shifted.append(plan)
        if self.state.start_at is not None and not self.state.prepared:
            self.state.start_at = max(self.state.start_at + paused, workflow.now())
        return shifted

    async def _tell_steps(self) -> None:
        for plan in self.state.steps:
            if plan.started and not plan.finished:
                workflow_id = step_workflow_id(self.request.campaign_id, plan.position, self.request.task_queue_prefix)
                handle = workflow.get_external_workflow_handle(workflow_id)
                try:
                    await handle.signal(LIFECYCLE, self.state.lifecycle)
                except Exception:  # the step already closed
                    workflow.logger.info("step %s closed before the lifecycle signal", plan.position)

    def _publish(self) -> None:
        """Search attributes and current details, so the Web UI tells the story."""
        workflow.upsert_search_attributes(
            [
                CAMPAIGN_ID.value_set(str(self.request.campaign_id)),
                CAMPAIGN_STATUS.value_set(self.state.lifecycle.state.value),
            ]
        )
        workflow.set_current_details(self._progress())

    def _progress(self) -> str:
        started = sum(plan.started for plan in self.state.steps)
        finished = sum(plan.finished for plan in self.state.steps)
        waiting = f"; waiting for {self.waiting_for}" if self.waiting_for else ""
        return (
            f"Campaign {self.request.campaign_id}: {self.state.lifecycle.state.value}, {self.state.enrolled} enrolled,"
            f" {started} of {len(self.state.steps)} steps started, {finished} finished{waiting}"
        )
