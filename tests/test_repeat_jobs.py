"""Repeatable jobs: a queue's `repeat:` entries become Temporal Schedules (`schedules sync`),
each run adds one job named by the repeat and the scheduled time, and an entry removed
from the file has its schedule deleted (the dev server: the test server has no schedules)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from db.jobs import list_jobs
from domain.jobs_yaml import JobsFileError, load_jobs_file
from runtime.schedules import SyncAction, job_schedules, sync_schedules
from tests.jobs_support import feature_service, with_jobs, write_jobs_file
from tests.support import Outbound

pytestmark = pytest.mark.timeout(120)


async def test_a_repeat_entry_adds_a_job_on_every_run_and_goes_away_with_its_entry(
    outbound_on_dev_server: Outbound, tmp_path: Path
) -> None:
    outbound = outbound_on_dev_server
    repeat = [{"id": "tick", "every": "2s", "name": "heartbeat", "data": {"source": "schedule"}}]
    secret = with_jobs(outbound, write_jobs_file(tmp_path, "http://127.0.0.1:9"))
    with feature_service(secret) as running:
        jobs_file = write_jobs_file(tmp_path, running.url, repeat=repeat)
        with_jobs(outbound, jobs_file)
        jobs = load_jobs_file(jobs_file)
        settings = outbound.settings
        outcomes = await sync_schedules(outbound.client, settings, job_schedules(jobs, outbound.prefix))
        assert [(o.schedule_id, o.action) for o in outcomes] == [
            (f"{outbound.prefix}outbound-job-enrich-tick", SyncAction.CREATED)
        ]
        async with outbound.worker():
            for _ in range(150):
                with outbound.sessions() as session:
                    done = [job for job in list_jobs(session, "enrich") if job.status == "completed"]
                if len(done) >= 2:
                    break
                await asyncio.sleep(0.1)
        assert len(done) >= 2, "a job on each run"
        assert all(job.job_key.startswith("tick-") and job.name == "heartbeat" for job in done)
        assert all(job.data == {"source": "schedule"} for job in done)
        assert len({job.job_key for job in done}) == len(done), "one job per scheduled time"

        gone = await sync_schedules(outbound.client, settings, [])
        assert [(o.schedule_id, o.action) for o in gone] == [
            (f"{outbound.prefix}outbound-job-enrich-tick", SyncAction.DELETED)
        ]


def test_a_repeat_needs_exactly_one_of_every_and_cron(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    queue = {"name": "enrich", "handler": "http", "endpoint": "http://x.example"}
    path.write_text(yaml.safe_dump({"queues": [queue | {"repeat": [{"id": "a", "every": "1h", "cron": "0 * * * *"}]}]}))
    with pytest.raises(JobsFileError, match="give exactly one of `every` and `cron`"):
        load_jobs_file(path)
    path.write_text(yaml.safe_dump({"queues": [queue | {"repeat": [{"id": "a", "cron": "every day"}]}]}))
    with pytest.raises(JobsFileError, match="cron takes five fields"):
        load_jobs_file(path)
