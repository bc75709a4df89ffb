"""A queue's `rate_limit` (BullMQ's limiter) holds across its worker: jobs start no faster
than that many per second however many slots are free (the dev server: Temporal's task
queue rate limit is the server's, which the test server does not apply)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from domain.jobs_yaml import load_jobs_file
from starter.job_producer import JobProducer
from tests.jobs_support import feature_service, with_jobs, write_jobs_file
from tests.support import Outbound

pytestmark = pytest.mark.timeout(120)

JOBS = 12
PER_SECOND = 4


async def test_jobs_start_no_faster_than_the_queues_rate_limit_with_slots_to_spare(
    outbound_on_dev_server: Outbound, tmp_path: Path
) -> None:
    outbound = outbound_on_dev_server
    secret = with_jobs(outbound, write_jobs_file(tmp_path, "http://127.0.0.1:9"))
    with feature_service(secret) as running:
        jobs_file = write_jobs_file(tmp_path, running.url, slots=JOBS, rate_limit=PER_SECOND)
        with_jobs(outbound, jobs_file)
        producer = JobProducer(outbound.client, outbound.sessions, load_jobs_file(jobs_file), outbound.prefix)
        async with outbound.worker():
            started = time.monotonic()
            added = [await producer.add("enrich", {"n": n}, job_key=f"limited-{n}") for n in range(JOBS)]
            await asyncio.wait_for(asyncio.gather(*(producer.handle(job.job).result() for job in added)), 60)
            took = time.monotonic() - started
    assert len(running.done) == JOBS
    # A second's worth may start at once; the rest follow at the limit's pace.
    slowest_allowed_burst = (JOBS - PER_SECOND) / PER_SECOND
    assert took >= slowest_allowed_burst * 0.9, f"{JOBS} jobs at {PER_SECOND}/s took only {took:.2f} s"
