"""Activities of `DeadLetterRetryWorkflow`: reopen the execution, re-claim it, settle it.

The send itself is the ordinary `SendActivities.send_message` on the channel's queue;
these only move the execution and its letter between states, one transaction each.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.dead_letters import DeadLetterError, begin_retry, claim_for_retry, finish_retry
from db.engine import SessionFactory, unit_of_work
from schemas.dead_letter_io import (
    BeginRetryInput,
    BeginRetryResult,
    ClaimRetryInput,
    ClaimRetryResult,
    DeadLetterRetryResult,
    FinishRetryInput,
)

REFUSED = "DeadLetterRetryRefused"


class DeadLetterActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    @activity.defn
    def begin_dead_letter_retry(self, request: BeginRetryInput) -> BeginRetryResult:
        """A refusal (discarded, resolved, cancelled campaign ...) is final: retrying the
        activity would refuse again."""
        try:
            with unit_of_work(self.sessions) as session:
                return begin_retry(session, request.dead_letter_id, request.now, request.lease_seconds)
        except DeadLetterError as error:
            raise ApplicationError(str(error), type=REFUSED, non_retryable=True) from None

    @activity.defn
    def claim_dead_letter_retry(self, request: ClaimRetryInput) -> ClaimRetryResult:
        with unit_of_work(self.sessions) as session:
            return claim_for_retry(session, request.execution_id, request.now, request.lease_seconds)

    @activity.defn
    def finish_dead_letter_retry(self, request: FinishRetryInput) -> DeadLetterRetryResult:
        with unit_of_work(self.sessions) as session:
            result = finish_retry(
                session,
                request.dead_letter_id,
                request.now,
                error_type=request.error_type,
                message=request.message,
                gave_up=request.gave_up,
            )
        activity.logger.info(
            "dead letter %s retried: execution %s, letter %s",
            result.dead_letter_id,
            result.execution_status.value,
            result.letter_status.value,
        )
        return result
