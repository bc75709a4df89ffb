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
