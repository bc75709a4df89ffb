"""The app-facing contract as JSON Schema: signal and update payloads, the launch input,
the status query result and the updates' answer, so an app in any language can validate
what it sends."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas import signals
from schemas.workflow_io import CampaignInput, CampaignProgress

CONTRACT: dict[str, type[BaseModel]] = {
    f"signal.{signals.PAUSE}": signals.PauseSignal,
    f"signal.{signals.RESUME}": signals.ResumeSignal,
    f"signal.{signals.CANCEL}": signals.CancelSignal,
    f"signal.{signals.CONTACT_REPLIED}": signals.ContactRepliedSignal,
    "workflow.CampaignWorkflow.input": CampaignInput,
    f"query.{signals.STATUS_QUERY}": CampaignProgress,
    # The same lifecycle changes as Workflow Updates: same payloads, acknowledged.
    f"update.{signals.PAUSE_UPDATE}": signals.PauseSignal,
    f"update.{signals.RESUME_UPDATE}": signals.ResumeSignal,
    f"update.{signals.CANCEL_UPDATE}": signals.CancelSignal,
    "update.result": signals.LifecycleAck,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in CONTRACT.items()}
