"""The small Python API the product's app (and the CLI) uses to drive campaigns.

Signals are the app's contract; this wrapper adds the checks a person expects: a
campaign that does not exist or has finished gets a clear error, not a silent no-op.
It starts, signals and queries workflows by name with the `schemas/` types only, so an
app that imports it loads the Temporal client, not the worker stack (workflows,
activities, the database layer, the providers' SDKs).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from runtime.names import (
    CAMPAIGN_ID,
    CAMPAIGN_STATUS,
    CAMPAIGN_WORKFLOW,
    CHANNEL,
    MAILBOX_SYNC_WORKFLOW,
    campaign_queue,
    campaign_workflow_id,
    mailbox_sync_workflow_id,
)
from schemas.enums import CampaignStatus
from schemas.inbound_io import MailboxSyncInput
from schemas.signals import (
    CANCEL,
    CANCEL_UPDATE,
    CONTACT_REPLIED,
    PAUSE,
    PAUSE_UPDATE,
    RESUME,
    RESUME_UPDATE,
    STATUS_QUERY,
    CancelSignal,
    ContactRepliedSignal,
    LifecycleAck,
    PauseSignal,
    ResumeSignal,
)
from schemas.workflow_io import CampaignInput, CampaignProgress, Tuning

SUMMARY_NAME_LIMIT = 120  # static summaries are meant to be one short line


def campaign_summary(campaign_id: int, name: str | None = None) -> str:
    """`Campaign 7: Q4 outreach`, the one line the Web UI shows for the campaign workflow."""
    if not name or not name.strip():
        return f"Campaign {campaign_id}"
    line = " ".join(name.split())
    if len(line) > SUMMARY_NAME_LIMIT:
        line = line[: SUMMARY_NAME_LIMIT - 1] + "…"
    return f"Campaign {campaign_id}: {line}"


class CampaignControlError(Exception):
    """The campaign cannot take this action (not launched, already finished, ...)."""


class OutboundClient:
    def __init__(self, client: Client, prefix: str = "", tuning: Tuning | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.tuning = tuning or Tuning()  # what a launch carries unless it says otherwise

    def handle(self, campaign_id: int) -> WorkflowHandle[Any, CampaignProgress]:
        return self.client.get_workflow_handle(
            campaign_workflow_id(campaign_id, self.prefix), result_type=CampaignProgress
        )

    async def launch(
        self,
        campaign_id: int,
        *,
        start_delay_seconds: int = 0,
        tuning: Tuning | None = None,
        name: str | None = None,
    ) -> WorkflowHandle[Any, CampaignProgress]:
        """Start `campaign-<id>` once. `name` (the campaign's own, not contact data) goes
        into the workflow's static summary so the Web UI list says which campaign it is."""
        try:
            return await self.client.start_workflow(
                CAMPAIGN_WORKFLOW,
                CampaignInput(
                    campaign_id=campaign_id,
                    start_delay_seconds=start_delay_seconds,
                    task_queue_prefix=self.prefix,
                    tuning=tuning or self.tuning,
                ),
                id=campaign_workflow_id(campaign_id, self.prefix),
                task_queue=campaign_queue(self.prefix),
                result_type=CampaignProgress,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(CAMPAIGN_ID, str(campaign_id)),
                        SearchAttributePair(CAMPAIGN_STATUS, CampaignStatus.ACTIVE.value),
                    ]
                ),
                static_summary=campaign_summary(campaign_id, name),
                static_details=(
                    f"Outreach campaign {campaign_id}; its steps run as the workflows"
                    f" {campaign_workflow_id(campaign_id, self.prefix)}-step-N. Search attributes:"
                    " CampaignId, CampaignStatus (children: CampaignId, Channel)."
                ),
            )
        except WorkflowAlreadyStartedError:
            raise CampaignControlError(f"campaign {campaign_id} was already launched") from None

    async def start_mailbox_sync(self, sender_id: int, *, interval_seconds: float = 60.0) -> str:
        """Start the mailbox's inbound sync, or leave the running one alone (idempotent)."""
        workflow_id = mailbox_sync_workflow_id(sender_id, self.prefix)
        await self.client.start_workflow(
            MAILBOX_SYNC_WORKFLOW,
            MailboxSyncInput(sender_id=sender_id, task_queue_prefix=self.prefix, interval_seconds=interval_seconds),
            id=workflow_id,
            task_queue=campaign_queue(self.prefix),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes([SearchAttributePair(CHANNEL, "email")]),
            static_summary=f"Inbound sync of mailbox {sender_id}",
            static_details="Follows the mailbox's Gmail history: replies, bounces, auto-replies, opt-outs.",
        )
        return workflow_id

    async def pause(self, campaign_id: int, reason: str | None = None) -> None:
        await self._signal(campaign_id, PAUSE, PauseSignal(reason=reason))

    async def resume(self, campaign_id: int) -> None:
        await self._signal(campaign_id, RESUME, ResumeSignal())

    async def cancel(self, campaign_id: int, reason: str | None = None) -> None:
        await self._signal(campaign_id, CANCEL, CancelSignal(reason=reason))

    async def contact_replied(self, campaign_id: int, contact_id: int, event_id: str | None = None) -> None:
        """Checked here first: a signal the workflow can only drop is better refused."""
        if isinstance(contact_id, bool) or not isinstance(contact_id, int) or contact_id < 1:
            raise CampaignControlError(f"contact id must be a positive whole number, not {contact_id!r}")
        try:
            payload = ContactRepliedSignal(contact_id=contact_id, event_id=event_id)
        except ValueError as error:
            raise CampaignControlError(f"contact_replied: {error}") from None
        await self._signal(campaign_id, CONTACT_REPLIED, payload)

    # Acknowledged lifecycle changes (Workflow Updates): one round trip, and the answer says
    # the gate is committed, or why the campaign refused.

    async def pause_now(self, campaign_id: int, reason: str | None = None) -> LifecycleAck:
        return await self._update(campaign_id, PAUSE_UPDATE, PauseSignal(reason=reason), "pause")

    async def resume_now(self, campaign_id: int) -> LifecycleAck:
        return await self._update(campaign_id, RESUME_UPDATE, ResumeSignal(), "resume")

    async def cancel_now(self, campaign_id: int, reason: str | None = None) -> LifecycleAck:
        return await self._update(campaign_id, CANCEL_UPDATE, CancelSignal(reason=reason), "cancel")

    async def _update(self, campaign_id: int, name: str, payload: BaseModel, verb: str) -> LifecycleAck:
        try:
            ack: LifecycleAck = await self.handle(campaign_id).execute_update(name, payload, result_type=LifecycleAck)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise CampaignControlError(getattr(cause, "message", None) or str(cause or error)) from None
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # Not launched, or closed: only then is a second round trip needed, to say which.
            raise CampaignControlError(await self._why_closed(campaign_id, verb)) from None
        return ack

    async def _why_closed(self, campaign_id: int, verb: str) -> str:
        """ "campaign 3 is CANCELLED; it cannot resume": the last CampaignStatus the workflow
        published, which its closed run keeps (a cancelled campaign's workflow itself completes
        normally). Worded as the workflow's validator words it, so the answer does not depend on
        whether the run had closed by the time the update arrived."""
        try:
            description = await self.handle(campaign_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return f"campaign {campaign_id} has not been launched"
            raise
        state = description.typed_search_attributes.get(CAMPAIGN_STATUS)
        if state:
            return f"campaign {campaign_id} is {state}; it cannot {verb}"
        closed = description.status.name.lower() if description.status else "closed"
        return f"campaign {campaign_id} has finished ({closed}); it cannot {verb}"

    async def progress(self, campaign_id: int) -> CampaignProgress | None:
        """The live state from the workflow, or None when it is not reachable."""
        try:
            result: CampaignProgress = await self.handle(campaign_id).query(STATUS_QUERY, result_type=CampaignProgress)
            return result
        except Exception:
            return None

    async def workflow_status(self, campaign_id: int) -> WorkflowExecutionStatus | None:
        try:
            description = await self.handle(campaign_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.status

    async def _signal(self, campaign_id: int, name: str, payload: BaseModel) -> None:
        """The app's signals, after the checks a person expects (launched, still running)."""
        status = await self.workflow_status(campaign_id)
        if status is None:
            raise CampaignControlError(f"campaign {campaign_id} has not been launched")
        if status != WorkflowExecutionStatus.RUNNING:
            raise CampaignControlError(
                f"campaign {campaign_id} has finished ({status.name.lower()}); it cannot take `{name}`"
            )
        await self.handle(campaign_id).signal(name, payload)
