"""The app-facing contract as JSON Schema: signal and update payloads, the launch input,
the status query result and the updates' answer, so an app in any language can validate
what it sends; and the webhook events' bodies (`event.<type>`: the whole body, its `data`
as the type documents), so it can validate what it receives."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas import signals
from schemas.events import EVENT_DATA, EventBody
from schemas.jobs import JobView
from schemas.jobs_api import AddJobRequest
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
    # The job platform's payloads (`POST /v1/jobs` and what a job looks like).
    "jobs.add_request": AddJobRequest,
    "jobs.job": JobView,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    schemas = {name: model.model_json_schema() for name, model in CONTRACT.items()}
    for kind, data in EVENT_DATA.items():
        body = EventBody.model_json_schema()
        body["title"] = f"Webhook {kind.value}"
        body["properties"]["type"] = {"const": kind.value, "title": "Type"}
        data_schema = data.model_json_schema()
        body.setdefault("$defs", {}).update(data_schema.pop("$defs", {}))  # refs are from the root
        body["$defs"].pop("EventType", None)
        body["properties"]["data"] = data_schema
        schemas[f"event.{kind.value}"] = body
    return schemas
