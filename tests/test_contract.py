"""The app's contract: signal names and payloads exported as JSON Schema."""

from __future__ import annotations

from schemas.contract import json_schemas


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
