"""Bulk jobs (DESIGN J4): one job over many items, walked with a bounded window and the
table as the cursor, each item retried on its own and dead-lettered when it cannot be
done, continuing as new as it goes (time-skipping server, the example feature service)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata

from db.job_dead_letters import list_job_letters
from db.job_items import item_counts
from domain.jobs_yaml import load_jobs_file
from starter.job_producer import JobError, JobProducer
from tests.jobs_support import FeatureService, closed_result, feature_service, with_jobs, write_jobs_file
from tests.support import Outbound

# PostgreSQL only: the walk is the same on SQLite, and 10,000 items take a while.
pytestmark = [pytest.mark.timeout(300), pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


@pytest.fixture
async def service(outbound: Outbound, tmp_path: Path) -> AsyncIterator[tuple[FeatureService, JobProducer]]:
    secret = with_jobs(outbound, write_jobs_file(tmp_path, "http://127.0.0.1:9"))
    with feature_service(secret) as running:
        jobs_file = write_jobs_file(tmp_path, running.url, slots=32, attempts=2)
        with_jobs(outbound, jobs_file)
        producer = JobProducer(outbound.client, outbound.sessions, load_jobs_file(jobs_file), outbound.prefix)
        async with outbound.worker():
            yield running, producer


def injected(n: int) -> dict[str, object]:
    """Every 100th item is refused for good, every 37th fails once and then succeeds,
    every 53rd fails once asking to be retried after a second, every 71st always fails."""
    if n % 100 == 0:
        return {"refuse": True}
    if n % 37 == 0:
        return {"fail_times": 1}
    if n % 53 == 0:
        return {"fail_times": 1, "retry_after": 1}
    if n % 71 == 0:
        return {"fail_times": 99}
    return {}


@pytest.mark.parametrize(
    ("total", "batch"),
    [pytest.param(500, 1, id="an activity per item"), pytest.param(10_000, 10, id="ten items per activity")],
)
async def test_a_bulk_job_runs_every_item_once_retries_the_flaky_and_dead_letters_the_refused(
    outbound: Outbound, service: tuple[FeatureService, JobProducer], total: int, batch: int
) -> None:
    running, producer = service
    items = [{"n": n} | injected(n) for n in range(1, total + 1)]
    added = await producer.add_bulk("enrich", items, name="refresh", job_key="batch-1", window=50, batch=batch)
    assert added.created
    again = await producer.add_bulk("enrich", items, job_key="batch-1")
    assert not again.created, "the same id twice is one bulk job"
    handle = producer.bulk_handle(added.job)
    for _ in range(300):  # while it walks, the Web UI shows how far
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        if re.fullmatch(rf"[\d,]+ of {total:,} items done, \d+ failed", metadata.current_details):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"no progress in the current details: {metadata.current_details!r}")
    outcome = await closed_result(handle, timeout=200)

    refused = sum(1 for n in range(1, total + 1) if n % 100 == 0 or (n % 71 == 0 and n % 37 and n % 53))
    assert outcome.model_dump() == {"completed": total - refused, "failed": refused}
    with outbound.sessions() as session:
        counts = item_counts(session, added.job.id)
        letters = list_job_letters(session, limit=total)
    assert (counts.completed, counts.failed, counts.pending) == (total - refused, refused, 0)
    assert len(letters) == refused
    assert {letter.error_type for letter in letters} == {"JobRefused", "JobAttemptFailed"}
    assert len(running.done) == total - refused, "each item's work done once"
    flaky = [n for n in range(1, total + 1) if (n % 37 == 0 or n % 53 == 0) and n % 100]
    assert all(running.attempts[f"batch-1:{n}"] == 2 for n in flaky), "a flaky item retried on its own"
    tried = [running.attempts[f"batch-1:{n}"] for n in range(1, total + 1) if not injected(n)]
    assert set(tried) == {1}, "one item's failure never repeats the others of its batch"
    shown = producer.get("batch-1")
    assert shown.status.value == "completed"
    assert shown.item_counts == {"completed": total - refused, "failed": refused, "pending": 0}
    assert shown.result == {"completed": total - refused, "failed": refused}
    metadata = await producer.bulk_handle(added.job).query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details == f"{total - refused:,} items completed, {refused:,} failed", (
        "the Web UI's details"
    )
    history = await producer.handle(added.job).fetch_history()
    assert len(history.events) < 5000, "the walk continued as new; no run's history grows with the job"


async def test_a_bulk_job_with_no_items_or_a_bad_queue_is_refused(service: tuple[FeatureService, JobProducer]) -> None:
    _, producer = service
    with pytest.raises(JobError, match="at least one item"):
        await producer.add_bulk("enrich", [])
    with pytest.raises(JobError, match="no queue named"):
        await producer.add_bulk("ghost", [{}])
