"""Jobs (DESIGN J1 to J3): a job is one workflow over one row, delegated to its feature
service over HTTP with a Standard Webhooks signature, retried with backoff, refused for
good on a permanent answer, delayed, cancelled and retried (time-skipping test server,
the example feature service on a real port)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from db.job_dead_letters import list_job_letters
from db.models import Job
from domain.jobs_yaml import load_jobs_file
from schemas.jobs import JobStatus, JobView
from starter.job_producer import JobError, JobProducer
from tests.jobs_support import FeatureService, feature_service, with_jobs, write_jobs_file
from tests.support import Outbound

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def service(outbound: Outbound, tmp_path: Path) -> AsyncIterator[tuple[FeatureService, JobProducer]]:
    placeholder = write_jobs_file(tmp_path, "http://127.0.0.1:9")
    secret = with_jobs(outbound, placeholder)
    with feature_service(secret) as running:
        jobs_file = write_jobs_file(tmp_path, running.url)
        with_jobs(outbound, jobs_file)
        producer = JobProducer(outbound.client, outbound.sessions, load_jobs_file(jobs_file), outbound.prefix)
        async with outbound.worker():
            yield running, producer


def row(outbound: Outbound, job: JobView) -> Job:
    with outbound.sessions() as session:
        found = session.get_one(Job, job.id)
        session.expunge(found)
        return found


async def finished(producer: JobProducer, job: JobView) -> None:
    await asyncio.wait_for(producer.handle(job).result(), timeout=60)


async def test_a_job_is_delegated_to_its_service_signed_and_completes_with_the_result(
    outbound: Outbound, service: tuple[FeatureService, JobProducer]
) -> None:
    running, producer = service
    added = await producer.add("enrich", {"domain": "acme.example"}, name="company", job_key="acme-1")
    assert added.created
    await finished(producer, added.job)

    job = row(outbound, added.job)
    assert (job.status, job.attempts_made, job.progress) == ("completed", 1, 100)
    assert job.result == {"job": "acme-1", "name": "company", "items": 1, "attempt": 1}
    assert running.done == {"acme-1": job.result}, "the service verified the signature and did the job once"


async def test_the_same_job_id_twice_is_one_job(
    outbound: Outbound, service: tuple[FeatureService, JobProducer]
) -> None:
    running, producer = service
    first, second = await asyncio.gather(
        producer.add("enrich", {"n": 1}, job_key="same"), producer.add("enrich", {"n": 2}, job_key="same")
    )
    assert sorted([first.created, second.created]) == [False, True]
    assert first.job.id == second.job.id
    await finished(producer, first.job)
    again = await producer.add("enrich", {"n": 3}, job_key="same")
    assert (again.created, again.job.status) == (False, JobStatus.COMPLETED)
    assert running.attempts == {"same": 1}


async def test_a_busy_service_is_retried_with_backoff_until_it_answers(
    outbound: Outbound, service: tuple[FeatureService, JobProducer]
) -> None:
    running, producer = service
    added = await producer.add("enrich", {"fail_times": 2}, job_key="busy")
    await finished(producer, added.job)
    job = row(outbound, added.job)
    assert (job.status, job.attempts_made, job.error) == ("completed", 3, None)
    assert running.attempts == {"busy": 3}


async def test_a_permanent_refusal_fails_the_job_at_once_and_used_up_retries_fail_it_too(
    outbound: Outbound, service: tuple[FeatureService, JobProducer]
) -> None:
    running, producer = service
    refused = await producer.add("enrich", {"refuse": True}, job_key="refused")
    exhausted = await producer.add("enrich", {"fail_times": 10}, job_key="exhausted")
    await asyncio.gather(finished(producer, refused.job), finished(producer, exhausted.job))

    job = row(outbound, refused.job)
    assert (job.status, job.attempts_made) == ("failed", 1)
    assert "HTTP 422" in (job.error or "")
    tired = row(outbound, exhausted.job)
    assert (tired.status, tired.attempts_made) == ("failed", 3), "the queue allows three attempts"
    assert running.attempts == {"refused": 1, "exhausted": 3}
    with outbound.sessions() as session:
        letters = {letter.job_key: letter for letter in list_job_letters(session)}
    assert (letters["refused"].error_type, letters["refused"].attempts) == ("JobRefused", 1)
    assert letters["refused"].retry_state == "NON_RETRYABLE_FAILURE"
    assert (letters["exhausted"].error_type, letters["exhausted"].attempts) == ("JobAttemptFailed", 3)
    assert letters["exhausted"].retry_state == "MAXIMUM_ATTEMPTS_REACHED"
    assert "HTTP 503" in letters["exhausted"].error


async def test_a_failed_job_is_retried_under_the_same_id_with_its_attempts_anew(
    outbound: Outbound, service: tuple[FeatureService, JobProducer]
) -> None:
    running, producer = service
    added = await producer.add("enrich", {"fail_times": 3}, job_key="again", attempts=2)
    await finished(producer, added.job)
    assert row(outbound, added.job).status == "failed"
    with pytest.raises(JobError, match="only an unfinished job is cancelled"):
        await producer.cancel("enrich/again")

    await producer.retry("enrich/again")
    with outbound.sessions() as session:
        assert list_job_letters(session) == [], "running it again resolves its dead letter"
    await finished(producer, added.job)
    job = row(outbound, added.job)
    assert (job.status, job.attempts_made) == ("completed", 2), "attempts counted anew"
    assert running.attempts == {"again": 4}
    with pytest.raises(JobError, match="only a failed or cancelled job is retried"):
        await producer.retry("again")


async def test_a_delayed_job_waits_and_can_be_cancelled_before_it_runs(
    outbound: Outbound, service: tuple[FeatureService, JobProducer], workflow_env: WorkflowEnvironment
) -> None:
    running, producer = service
    later = await producer.add("enrich", {}, job_key="later", delay_seconds=3600)
    never = await producer.add("enrich", {}, job_key="never", delay_seconds=3600)
    assert later.job.status is JobStatus.DELAYED
    assert later.job.run_after is not None
    await producer.cancel("never")
    await asyncio.wait_for(workflow_env.sleep(3700), timeout=60)
    await finished(producer, later.job)
    assert row(outbound, later.job).status == "completed"
    with pytest.raises(Exception):  # noqa: B017,PT011 - the cancelled workflow's result is its cancellation
        await finished(producer, never.job)
    assert row(outbound, never.job).status == "cancelled"
    assert "never" not in running.attempts


async def test_job_data_and_results_stay_out_of_workflow_history(
    outbound: Outbound, service: tuple[FeatureService, JobProducer]
) -> None:
    _, producer = service
    added = await producer.add("enrich", {"email": "secret-person@example.com"}, job_key="private")
    await finished(producer, added.job)
    history = await producer.handle(added.job).fetch_history()
    text = json.dumps(history.to_json_dict())
    assert "secret-person" not in text
    assert '"items"' not in text, "nor the result"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"priority": 9}, "priority must be 1"),
        ({"attempts": 0}, "attempts must be 1 to 100"),
        ({"job_key": "has space"}, "without spaces"),
        ({"delay_seconds": -1}, "delay cannot be negative"),
    ],
)
async def test_bad_job_options_are_refused_and_nothing_is_written(
    outbound: Outbound, service: tuple[FeatureService, JobProducer], options: dict[str, Any], problem: str
) -> None:
    _, producer = service
    with pytest.raises(JobError, match=problem):
        await producer.add("enrich", {}, **options)
    with pytest.raises(JobError, match="no queue named 'nope'"):
        await producer.add("nope", {})
    with outbound.sessions() as session:
        assert session.query(Job).count() == 0
