"""Activities of the step workflow: planning, handing out due rows, dead letters."""

from __future__ import annotations

from temporalio import activity

from db.engine import SessionFactory, unit_of_work
from db.planning import fetch_due, mark_step_finished, plan_step
from db.sending import dead_letter, execution_channel
from runtime.metrics import NO_METRICS, OutboundMetrics
from schemas.activity_io import (
    DeadLetterInput,
    FetchDueInput,
    FetchDueResult,
    FinishStepInput,
    PlanStepInput,
    PlanStepResult,
)


class StepActivities:
    def __init__(self, sessions: SessionFactory, metrics: OutboundMetrics | None = None) -> None:
        self.sessions = sessions
        self.metrics = metrics or NO_METRICS

    @activity.defn
    def plan_step(self, request: PlanStepInput) -> PlanStepResult:
        with unit_of_work(self.sessions) as session:
            return plan_step(
                session,
                request.step_id,
                request.now,
                request.since,
                resume_after=request.resume_after,
                budget=request.budget,
            )

    @activity.defn
    def fetch_due(self, request: FetchDueInput) -> FetchDueResult:
        with unit_of_work(self.sessions) as session:
            return fetch_due(
                session,
                request.step_id,
                request.now,
                request.limit,
                request.lease_seconds,
                request.exclude,
                request.claim_token,
            )

    @activity.defn
    def finish_step(self, request: FinishStepInput) -> None:
        with unit_of_work(self.sessions) as session:
            mark_step_finished(session, request.step_id, request.now)

    @activity.defn
    def dead_letter(self, request: DeadLetterInput) -> None:
        """The send gave up: FAILED and a dead-letter record; the campaign goes on."""
        with unit_of_work(self.sessions) as session:
            attempts = dead_letter(
                session,
                request.execution_id,
                request.error_type,
                request.message,
                request.attempts,
                request.now,
                retry_state=request.retry_state,
            )
            if attempts is not None:
                channel = execution_channel(session, request.execution_id)
                self.metrics.dead_letter(channel or "unknown")
                activity.logger.warning(
                    "execution %s dead-lettered after %s attempts (%s): %s",
                    request.execution_id,
                    attempts,
                    request.retry_state or "retries stopped",
                    request.error_type,
                    extra={"execution_id": request.execution_id, "channel": channel, "error_type": request.error_type},
                )
