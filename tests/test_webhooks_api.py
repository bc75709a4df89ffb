"""`/v1/webhooks` with API keys: add (the secret once), list, read, disable and enable
(409 when already so), rotate, ping, deliveries, replay; 401 without a key, 422 for a bad
body or a refused URL, 404 for an unknown endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.api_keys import create_key
from db.engine import unit_of_work
from db.events import record_event
from runtime.settings import WebhookSettings
from schemas.events import CampaignData, EventType
from tests.jobs_support import Receiver, delivering, until, webhook_receiver
from tests.support import Outbound
from workers.api import ApiDependencies, create_app

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def api(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> AsyncIterator[tuple[httpx.AsyncClient, Receiver]]:
    outbound.overrides = {**outbound.overrides, "webhooks": WebhookSettings(allow_private=True, poll=0)}
    with unit_of_work(outbound.sessions) as session:
        key = create_key(session, "the app", datetime.now(UTC))

    async def temporal() -> Client:
        return workflow_env.client

    app = create_app(ApiDependencies(outbound.settings, outbound.sessions, temporal))
    with webhook_receiver() as receiver:
        async with (
            delivering(outbound),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api",
                headers={"Authorization": f"Bearer {key}"},
            ) as client,
        ):
            yield client, receiver


async def test_an_app_manages_its_endpoints_over_http(api: tuple[httpx.AsyncClient, Receiver]) -> None:
    client, receiver = api
    added = await client.post("/v1/webhooks", json={"url": receiver.url, "events": ["contact.replied"]})
    assert added.status_code == 201
    body = added.json()
    assert body["secret"].startswith("whsec_")
    endpoint = body["endpoint"]
    assert (endpoint["events"], endpoint["status"]) == (["contact.replied"], "enabled")
    assert "secret" not in (await client.get(f"/v1/webhooks/{endpoint['id']}")).json(), "shown once"
    assert [each["id"] for each in (await client.get("/v1/webhooks")).json()] == [endpoint["id"]]

    receiver.trust(body["secret"])
    ping = (await client.post(f"/v1/webhooks/{endpoint['id']}/test")).json()
    assert (ping["status_code"], ping["error"]) == (204, None)
    assert receiver.received[0][1]["type"] == "webhook.ping"

    rotated = (await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret")).json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != body["secret"]

    assert (await client.post(f"/v1/webhooks/{endpoint['id']}/disable")).json()["status"] == "disabled"
    again = await client.post(f"/v1/webhooks/{endpoint['id']}/disable")
    assert (again.status_code, again.json()["detail"]) == (409, f"endpoint {endpoint['id']} is already disabled")
    assert (await client.post(f"/v1/webhooks/{endpoint['id']}/enable")).json()["status"] == "enabled"
    assert (await client.get("/v1/webhooks/deliveries", params={"endpoint": endpoint["id"]})).json() == []


async def test_bad_requests_get_clear_answers(api: tuple[httpx.AsyncClient, Receiver]) -> None:
    client, _ = api
    unknown_type = await client.post("/v1/webhooks", json={"url": "https://example.com/h", "events": ["contact.x"]})
    assert unknown_type.status_code == 422
    assert "unknown event type(s) contact.x" in unknown_type.json()["detail"]
    extra = await client.post("/v1/webhooks", json={"url": "https://example.com/h", "secret": "mine"})
    assert extra.status_code == 422, "unknown fields are refused"
    assert (await client.get("/v1/webhooks/999")).status_code == 404
    assert (await client.post("/v1/webhooks/replay", json={"event_id": "123"})).status_code == 422
    missing = await client.post("/v1/webhooks/replay", json={"event_id": "evt_424242", "endpoint_id": 999})
    assert missing.status_code == 404
    anonymous = await client.get("/v1/webhooks", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_an_app_sees_a_delivery_and_replays_its_event_under_the_same_id(
    outbound: Outbound, api: tuple[httpx.AsyncClient, Receiver]
) -> None:
    client, receiver = api
    added = (await client.post("/v1/webhooks", json={"url": receiver.url, "events": ["campaign.paused"]})).json()
    receiver.trust(added["secret"])
    now = datetime.now(UTC)
    with unit_of_work(outbound.sessions) as session:
        record_event(
            session, EventType.CAMPAIGN_PAUSED, CampaignData(campaign_id=7, name="q4", status="PAUSED", at=now), now
        )
    await until(lambda: len(receiver.received) == 1, "the event's first delivery")

    [shown] = (await client.get("/v1/webhooks/deliveries", params={"endpoint": added["endpoint"]["id"]})).json()
    event_id = receiver.received[0][0]
    assert (shown["event_id"], shown["event_type"]) == (event_id, "campaign.paused")
    assert (shown["status"], shown["attempts"], shown["last_status_code"]) == ("delivered", 1, 204)
    assert (await client.get("/v1/webhooks/deliveries", params={"failed": True})).json() == []

    replayed = await client.post("/v1/webhooks/replay", json={"event_id": event_id})
    assert (replayed.status_code, replayed.json()) == (202, {"queued": 1})
    await until(lambda: len(receiver.received) == 2, "the replay")
    assert [message_id for message_id, _ in receiver.received] == [event_id, event_id], "a replay keeps its id"
    assert receiver.app.state.rejected == 0
