"""The app's contract: signal names and payloads exported as JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from db.engine import make_engine, make_session_factory
from runtime.settings import Settings
from schemas.contract import json_schemas
from workers.api import ApiDependencies, create_app
from workers.api.openapi import openapi_document


def test_every_signal_the_app_sends_has_a_json_schema() -> None:
    names = set(json_schemas())
    assert {"signal.pause", "signal.resume", "signal.cancel", "signal.contact_replied"} <= names


def test_a_reply_signal_carries_a_contact_id_and_no_address() -> None:
    schema = json_schemas()["signal.contact_replied"]
    assert schema["required"] == ["contact_id"]
    assert not {"email", "phone"} & set(schema["properties"])


def test_the_lifecycle_updates_take_the_signal_payloads_and_answer_with_the_state() -> None:
    schemas = json_schemas()
    assert schemas["update.pause_campaign"] == schemas["signal.pause"]
    assert schemas["update.cancel_campaign"] == schemas["signal.cancel"]
    assert set(schemas["update.result"]["required"]) == {"campaign_id", "state", "version"}


def test_every_webhook_event_has_a_json_schema_for_its_body() -> None:
    schemas = json_schemas()
    replied = schemas["event.contact.replied"]
    assert replied["properties"]["type"] == {"const": "contact.replied", "title": "Type"}
    assert {"contact", "reason", "at"} <= set(replied["properties"]["data"]["required"])
    assert {"event.message.sent", "event.job.failed", "event.webhook.endpoint_disabled"} <= set(schemas)


async def test_the_committed_openapi_document_is_the_one_the_api_serves() -> None:
    committed = json.loads((Path(__file__).parent.parent / "schemas" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document())), (
        "schemas/openapi.json is stale: `uv run python -m workers.api.openapi > schemas/openapi.json`"
    )
    sessions = make_session_factory(make_engine("sqlite://"))
    app = create_app(ApiDependencies(Settings(database_url="sqlite://"), sessions, None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        served = (await client.get("/v1/openapi.json")).json()
    assert served == committed
    assert {"/v1/campaigns/{campaign_id}/pause", "/v1/jobs", "/v1/webhooks/replay"} <= set(served["paths"])


def test_the_job_payloads_have_json_schemas() -> None:
    assert {"jobs.add_request", "jobs.job"} <= set(json_schemas())
