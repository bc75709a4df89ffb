"""`/v1/jobs` and `/v1/queues` with API keys: enqueue (idempotent, even for two requests at
once), read, cancel, retry; 401 without a valid key, 422 for a bad body, 404 and 409."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.api_keys import create_key, revoke_key
from db.engine import unit_of_work
from tests.jobs_support import feature_service, with_jobs, write_jobs_file
from tests.support import Outbound
from workers.api import ApiDependencies, create_app

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def api(
    outbound: Outbound, workflow_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    secret = with_jobs(outbound, write_jobs_file(tmp_path, "http://127.0.0.1:9"))
    with feature_service(secret) as running:
        with_jobs(outbound, write_jobs_file(tmp_path, running.url))
        with unit_of_work(outbound.sessions) as session:
            key = create_key(session, "the app", datetime.now(UTC))

        async def temporal() -> Client:
            return workflow_env.client

        app = create_app(ApiDependencies(outbound.settings, outbound.sessions, temporal))
        transport = httpx.ASGITransport(app=app)
        async with (
            outbound.worker(),
            httpx.AsyncClient(
                transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {key}"}
            ) as client,
        ):
            yield client


async def eventually_completed(api: httpx.AsyncClient, reference: str) -> dict[str, Any]:
    for _ in range(300):
        job: dict[str, Any] = (await api.get(f"/v1/jobs/{reference}")).json()
        if job["status"] == "completed":
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {reference} did not complete")


async def test_two_requests_at_once_with_one_job_id_make_one_job(api: httpx.AsyncClient) -> None:
    body = {"queue": "enrich", "name": "company", "data": {"domain": "acme.example"}, "jobId": "acme-1"}
    first, second = await asyncio.gather(api.post("/v1/jobs", json=body), api.post("/v1/jobs", json=body))
    assert sorted([first.json()["created"], second.json()["created"]]) == [False, True]
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["job"]["id"] == second.json()["job"]["id"]
    job = await eventually_completed(api, "acme-1?queue=enrich")
    assert job["result"]["job"] == "acme-1"
    assert job["attempts_made"] == 1

    queues = (await api.get("/v1/queues")).json()
    assert queues[0]["name"] == "enrich"
    assert queues[0]["counts"]["completed"] == 1
    finished = await api.delete("/v1/jobs/acme-1")
    assert finished.status_code == 409
    assert "only an unfinished job is cancelled" in finished.json()["detail"]


async def test_a_delayed_job_is_cancelled_and_retried_over_http(api: httpx.AsyncClient) -> None:
    added = await api.post("/v1/jobs", json={"queue": "enrich", "jobId": "later", "delay": "1h", "priority": 1})
    assert added.status_code == 201
    assert added.json()["job"]["status"] == "delayed"
    assert (await api.delete("/v1/jobs/later")).status_code == 202
    for _ in range(100):
        if (await api.get("/v1/jobs/later")).json()["status"] == "cancelled":
            break
        await asyncio.sleep(0.1)
    retried = await api.post("/v1/jobs/later/retry")
    assert retried.status_code == 202, retried.text
    await eventually_completed(api, "later")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queue": "enrich", "priority": 9}, "priority"),
        ({"queue": "enrich", "data": [1, 2]}, "data"),
        ({"queue": "enrich", "colour": "red"}, "colour"),
        ({"data": {}}, "queue"),
        ({"queue": "enrich", "delay": "soon"}, "delay"),
    ],
)
async def test_a_bad_body_gets_a_422_naming_the_field(api: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    response = await api.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])


async def test_unknown_queues_and_jobs(api: httpx.AsyncClient) -> None:
    unknown_queue = await api.post("/v1/jobs", json={"queue": "ghost"})
    assert unknown_queue.status_code == 422
    assert "no queue named 'ghost'" in unknown_queue.json()["detail"]
    assert (await api.get("/v1/jobs/nothing")).status_code == 404


async def test_missing_wrong_and_revoked_keys_get_401(outbound: Outbound, api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/queues")).status_code == 200
    missing = await api.get("/v1/queues", headers={"Authorization": ""})
    assert (missing.status_code, missing.json()["detail"]) == (401, "missing bearer token")
    wrong = await api.get("/v1/queues", headers={"Authorization": "Bearer obk_guess"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid or revoked API key")
    with unit_of_work(outbound.sessions) as session:
        revoke_key(session, "the app", datetime.now(UTC))
    assert (await api.get("/v1/queues")).status_code == 401
