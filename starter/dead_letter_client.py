"""Starting a dead-letter retry: the part of `outbound dlq retry` the app can call too."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from runtime.names import campaign_queue, dead_letter_retry_workflow_id
from schemas.dead_letter_io import DeadLetterRetryInput, DeadLetterRetryResult
from schemas.workflow_io import Tuning
from workflows.dead_letter_retry import DeadLetterRetryWorkflow


class DeadLetterRetryRefused(Exception):
    """A retry of this dead letter is running right now (one at a time per letter)."""


async def start_dead_letter_retry(
    client: Client, dead_letter_id: int, *, prefix: str = "", tuning: Tuning | None = None
) -> WorkflowHandle[Any, DeadLetterRetryResult]:
    workflow_id = dead_letter_retry_workflow_id(dead_letter_id, prefix)
    try:
        return await client.start_workflow(
            DeadLetterRetryWorkflow.run,
            DeadLetterRetryInput(dead_letter_id=dead_letter_id, task_queue_prefix=prefix, tuning=tuning or Tuning()),
            id=workflow_id,
            task_queue=campaign_queue(prefix),
            # A letter whose retry failed again is open again and may be retried again (a
            # new run of the same id); a retry still running refuses a second one.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Retry of dead letter {dead_letter_id}",
        )
    except WorkflowAlreadyStartedError:
        raise DeadLetterRetryRefused(
            f"dead letter {dead_letter_id} is being retried right now (workflow {workflow_id}); wait for it to finish"
        ) from None
