"""A worker killed with `kill -9` in the middle of a job: the next worker's attempt sends
the same `Idempotency-Key`, the feature service answers from what it already did, and the
job completes once; a bulk job's batches resume where they were, an item done before the
kill is not sent again (the dev server, real `outbound worker` processes, PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from runtime.job_queues import queue_secret
from runtime.settings import Settings
from tests.e2e_support import Deployment, TemporalServer, eventually
from tests.jobs_support import feature_service, write_jobs_file
from tests.support import TEST_SECRET_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


@pytest.fixture
def deployment(temporal_server: TemporalServer, database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(temporal_server, database_url, tmp_path)
    yield deployment
    deployment.stop_worker()


@pytest.mark.timeout(150)
def test_a_worker_killed_mid_job_resends_the_same_idempotency_key_and_the_job_completes_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    secret = queue_secret(Settings(secret_key=SecretStr(TEST_SECRET_KEY)), "enrich")
    with feature_service(secret) as service:
        jobs_file = write_jobs_file(tmp_path, service.url, timeout="4s", attempts=3)
        deployment.extra_env = {"OUTBOUND_JOBS_FILE": str(jobs_file)}
        deployment.start_worker()
        items = tmp_path / "items.jsonl"
        items.write_text("".join(json.dumps({"n": n, "sleep": 0.4}) + "\n" for n in range(1, 21)))
        deployment.ok("jobs", "add-bulk", "enrich", "--items", str(items), "--id", "walk", "--window", "20")
        eventually(lambda: len([k for k in service.requests if k.startswith("walk:")]) >= 2, what="items under way")
        deployment.ok("jobs", "add", "enrich", "--data", '{"sleep": 2}', "--id", "slow")
        eventually(lambda: service.requests.get("slow"), what="the first request to reach the service")
        assert deployment.worker_process is not None
        deployment.worker_process.kill()  # kill -9, the request still in flight
        deployment.worker_process.wait()
        time.sleep(0.5)
        deployment.start_worker()

        def completed() -> dict[str, object] | None:
            shown = json.loads(deployment.ok("jobs", "show", "slow", "--json").stdout)
            return shown if shown["status"] == "completed" else None

        job = eventually(completed, what="the job to complete on the second worker", timeout=90)
        assert service.requests["slow"] == 2, "the same Idempotency-Key came again" + deployment.worker_log_tail()
        assert service.attempts["slow"] == 1, "the work was done once"
        assert "slow" in service.done
        assert job["attempts_made"] == 2
        assert job["result"] == service.done["slow"]

        def walked() -> dict[str, object] | None:
            shown = json.loads(deployment.ok("jobs", "show", "walk", "--json").stdout)
            return shown if shown["status"] == "completed" else None

        bulk = eventually(walked, what="the bulk job to finish on the second worker", timeout=90)
        assert bulk["item_counts"] == {"completed": 20, "failed": 0, "pending": 0}
        keys = [f"walk:{n}" for n in range(1, 21)]
        assert all(service.attempts[key] == 1 for key in keys), "each item's work done once"
        sent_twice = [key for key in keys if service.requests[key] > 1]
        assert len(sent_twice) <= 2, f"only the item each batch was running is sent again: {sent_twice}"
