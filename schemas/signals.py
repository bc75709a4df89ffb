"""Signal payloads: the contract the product's app uses (exported as JSON Schema).

Models only grow: new fields get defaults so running histories keep decoding.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.enums import CampaignStatus, SkipReason

PAUSE = "pause"
RESUME = "resume"
CANCEL = "cancel"
CONTACT_REPLIED = "contact_replied"
LIFECYCLE = "lifecycle"  # parent -> step children
STEP_FINISHED = "step_finished"  # step child -> parent
RESTART_STEP = "restart_step"  # follow-up processor -> parent
STATUS_QUERY = "status"
# Workflow Updates with the same meaning as pause / resume / cancel (DESIGN R2): validated
# before they are accepted, answered once the gate is committed. The signals stay the
# app's contract; the CLI uses these to get an answer or a refusal in one round trip.
PAUSE_UPDATE = "pause_campaign"
RESUME_UPDATE = "resume_campaign"
CANCEL_UPDATE = "cancel_campaign"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PauseSignal(_Payload):
    reason: str | None = Field(None, max_length=500)


class ResumeSignal(_Payload):
    pass


class CancelSignal(_Payload):
    reason: str | None = Field(None, max_length=500)


class ContactRepliedSignal(_Payload):
    """A contact answered (ids only: no addresses or message text in workflow history)."""

    contact_id: int
    reason: SkipReason = SkipReason.REPLIED
    event_id: str | None = Field(None, max_length=200, description="Idempotency key of the inbound event.")


class Lifecycle(_Payload):
    """The campaign's state at a version; receivers ignore versions older than theirs."""

    state: CampaignStatus
    version: int


class StepFinishedSignal(_Payload):
    position: int
    cancelled: bool = False


class RestartStepSignal(_Payload):
    """The follow-up processor found contacts due for this step while its workflow is not
    running: the campaign starts it again under the same id (planning is idempotent)."""

    position: int


class LifecycleAck(_Payload):
    """The answer to a lifecycle Update: the campaign's state once the change is committed."""

    campaign_id: int
    state: CampaignStatus
    version: int
