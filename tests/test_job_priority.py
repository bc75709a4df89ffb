"""Priority (DESIGN J2): on a queue with one slot, the jobs waiting for it start in
priority order (1 first), as BullMQ's
`priority` option does (the dev server: the test server has no task-queue priorities).
Within one priority the server keeps the order they were added as a rule, not a promise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from domain.jobs_yaml import load_jobs_file
from starter.job_producer import JobProducer
from tests.jobs_support import feature_service, with_jobs, write_jobs_file
from tests.support import Outbound

pytestmark = pytest.mark.timeout(120)


async def test_with_one_slot_the_waiting_jobs_start_in_priority_order(
    outbound_on_dev_server: Outbound, tmp_path: Path
) -> None:
    outbound = outbound_on_dev_server
    secret = with_jobs(outbound, write_jobs_file(tmp_path, "http://127.0.0.1:9"))
    with feature_service(secret) as running:
        jobs_file = write_jobs_file(tmp_path, running.url, slots=1)
        with_jobs(outbound, jobs_file)
        producer = JobProducer(outbound.client, outbound.sessions, load_jobs_file(jobs_file), outbound.prefix)
        async with outbound.worker():
            blocker = await producer.add("enrich", {"sleep": 2}, job_key="blocker")
            while "blocker" not in running.app.state.attempts:  # the one slot is taken
                await asyncio.sleep(0.05)
            priorities = [5, 1, 3, 2, 4, 1, 5, 2, 3]
            added = [
                await producer.add("enrich", {"n": n}, job_key=f"p{priority}-{n}", priority=priority)
                for n, priority in enumerate(priorities)
            ]
            for job in added:  # every one is waiting for the slot before the slot frees
                while not (await producer.handle(job.job).describe()).raw_description.pending_activities:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(
                asyncio.gather(*(producer.handle(job.job).result() for job in [blocker, *added])), timeout=60
            )
    started = [int(key.split("-")[0][1:]) for key in running.done if key != "blocker"]
    assert started == sorted(priorities), "the waiting jobs started in priority order"
