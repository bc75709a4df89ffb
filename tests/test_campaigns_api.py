"""`/v1/campaigns`, `/v1/contacts/replied`, `/v1/suppressions` with API keys: the app
launches, pauses, resumes and cancels through the workflow's Updates (409 when the state
forbids it), reads the same figures as `campaign status --json`, stops a contact by address
and suppresses one; 404 for an unknown campaign, 401 without a key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.api_keys import create_key
from db.engine import unit_of_work
from tests.support import THREE_STEPS, Outbound, campaign_spec, people, seed
from workers.api import ApiDependencies, create_app

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def api(outbound: Outbound, workflow_env: WorkflowEnvironment) -> AsyncIterator[httpx.AsyncClient]:
    with unit_of_work(outbound.sessions) as session:
        key = create_key(session, "the app", datetime.now(UTC))

    async def temporal() -> Client:
        return workflow_env.client

    app = create_app(ApiDependencies(outbound.settings, outbound.sessions, temporal))
    async with (
        outbound.worker(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api", headers={"Authorization": f"Bearer {key}"}
        ) as client,
    ):
        yield client


async def test_an_app_runs_a_campaign_over_http(outbound: Outbound, api: httpx.AsyncClient) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 3)})
    assert [row["id"] for row in (await api.get("/v1/campaigns")).json()] == [campaign]
    launched = await api.post(f"/v1/campaigns/{campaign}/launch", json={"start_delay_seconds": 3600})
    assert launched.status_code == 202
    assert launched.json()["workflow_id"] == f"{outbound.prefix}campaign-{campaign}"
    again = await api.post(f"/v1/campaigns/{campaign}/launch")
    assert again.status_code == 409

    paused = await api.post(f"/v1/campaigns/{campaign}/pause", json={"reason": "checking the copy"})
    assert (paused.status_code, paused.json()["state"]) == (200, "PAUSED")
    twice = await api.post(f"/v1/campaigns/{campaign}/pause")
    assert twice.status_code == 409
    assert "PAUSED" in twice.json()["detail"]
    assert (await api.post(f"/v1/campaigns/{campaign}/resume")).json()["state"] == "ACTIVE"

    replied = await api.post("/v1/contacts/replied", json={"email": "A1@example.com"})
    assert replied.status_code == 200
    assert replied.json()["contact_id"] == outbound.contact_id("a1@example.com")
    suppressed = await api.post("/v1/suppressions", json={"value": "@competitor.example", "reason": "rival"})
    assert (suppressed.status_code, suppressed.json()["kind"]) == (201, "domain")

    cancelled = await api.post(f"/v1/campaigns/{campaign}/cancel", json={"reason": "done"})
    assert cancelled.json()["state"] == "CANCELLED"
    refused = await api.post(f"/v1/campaigns/{campaign}/resume")
    assert (refused.status_code, refused.json()["detail"]) == (
        409,
        f"campaign {campaign} is CANCELLED; it cannot resume",
    )
    status = (await api.get(f"/v1/campaigns/{campaign}")).json()
    assert (status["campaign_id"], status["status"]) == (campaign, "CANCELLED")
    assert status["enrolled"] == 0, "cancelled during its start delay: nobody enrolled"
    assert "totals" in status
    report = await api.get(f"/v1/campaigns/{campaign}/report")
    assert report.status_code == 200
    # The cancel is acknowledged once committed; the run then winds down and closes.
    closing = outbound.client.get_workflow_handle(launched.json()["workflow_id"])
    progress = await asyncio.wait_for(closing.result(), 60)
    assert progress["lifecycle"]["state"] == "CANCELLED"


async def test_unknown_things_and_missing_keys_get_clear_answers(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/campaigns/999")).status_code == 404
    assert (await api.post("/v1/campaigns/999/pause")).status_code == 404
    assert (await api.post("/v1/contacts/replied", json={"email": "nobody@example.com"})).status_code == 404
    both = await api.post("/v1/contacts/replied", json={"email": "a@example.com", "contact_id": 1})
    assert both.status_code == 422
    assert (await api.post("/v1/suppressions", json={"value": "x@example.com", "reason": ""})).status_code == 422
    assert (await api.get("/v1/campaigns", headers={"Authorization": "Bearer nope"})).status_code == 401
