"""`outbound queues list | stats` and `outbound jobs add | list | show | cancel | retry` as a
user runs them (the time-skipping test server, the example feature service)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from db.job_dead_letters import list_job_letters
from starter.cli_dlq import dlq_app
from starter.cli_jobs import jobs_app, queues_app
from tests.jobs_support import FeatureService, feature_service, jobs_closed, with_jobs, write_jobs_file
from tests.support import Outbound

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cli(outbound: Outbound, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FeatureService]:
    secret = with_jobs(outbound, write_jobs_file(tmp_path, "http://127.0.0.1:9"))
    with feature_service(secret) as running:
        jobs_file = write_jobs_file(tmp_path, running.url, rate_limit=20)
        with_jobs(outbound, jobs_file)
        for name, value in {
            "OUTBOUND_DATABASE_URL": str(outbound.database_url),
            "OUTBOUND_TEMPORAL_ADDRESS": outbound.client.service_client.config.target_host,
            "OUTBOUND_TEMPORAL_NAMESPACE": outbound.client.namespace,
            "OUTBOUND_TASK_QUEUE_PREFIX": outbound.prefix,
            "OUTBOUND_JOBS_FILE": str(jobs_file),
            "OUTBOUND_SECRET_KEY": outbound.settings.secret_key.get_secret_value(),  # type: ignore[union-attr]
            "COLUMNS": "200",
        }.items():
            monkeypatch.setenv(name, value)
        yield running


def invoke(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_queues_list_shows_each_queue_and_its_options(cli: FeatureService) -> None:
    result = invoke(queues_app, "list")
    assert result.exit_code == 0, result.output
    assert "enrich" in result.output
    assert cli.url in result.output
    assert "20/s" in result.output
    secret = invoke(queues_app, "secret", "enrich")
    assert secret.output.strip().startswith("whsec_")
    assert invoke(queues_app, "secret", "nope").exit_code != 0


async def test_jobs_add_twice_is_one_job_and_show_tells_its_story(outbound: Outbound, cli: FeatureService) -> None:
    async with outbound.worker():
        first = await asyncio.to_thread(invoke, jobs_app, "add", "enrich", "--data", '{"domain": "acme.example"}',
                                        "--id", "acme-1", "--name", "company")  # fmt: skip
        assert first.exit_code == 0, first.output
        assert "Job acme-1 added to queue enrich" in first.output
        second = await asyncio.to_thread(invoke, jobs_app, "add", "enrich", "--id", "acme-1")
        assert "Job acme-1 already exists in queue enrich" in second.output
        for _ in range(100):
            shown = await asyncio.to_thread(invoke, jobs_app, "show", "enrich/acme-1", "--json")
            if json.loads(shown.output)["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        await jobs_closed(outbound)  # the row says completed before the workflow's last task ran
    job = json.loads(shown.output)
    assert (job["status"], job["attempts_made"], job["data"]) == ("completed", 1, {"domain": "acme.example"})
    text = invoke(jobs_app, "show", "acme-1").output
    assert "Status: completed, 1 of 3 attempts made" in text
    assert f"/workflows/{outbound.prefix}job-enrich-acme-1" in text
    listed = invoke(jobs_app, "list", "--status", "completed").output
    assert "acme-1" in listed
    stats = json.loads(invoke(queues_app, "stats", "--json").output)
    assert stats["enrich"] == {"waiting": 0, "delayed": 0, "active": 0, "completed": 1, "failed": 0, "cancelled": 0}
    assert set(stats) == {"enrich", "verify-email", "ai"}, "the file's queues and the built-in ones"
    assert "enrich" in invoke(queues_app, "stats").output


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["add", "enrich", "--data", "{not json"], "--data is not valid JSON"),
        (["add", "enrich", "--data", "[1, 2]"], "--data must be a JSON object"),
        (["add", "enrich", "--data", "@/no/such/file.json"], "cannot read /no/such/file.json"),
        (["add", "enrich", "--delay", "soon"], "--delay:"),
        (["add", "ghost"], "no queue named 'ghost'"),
        (["show", "nothing-here"], "no job 'nothing-here'"),
    ],
)
def test_bad_input_gets_a_clear_error(cli: FeatureService, args: list[str], problem: str) -> None:
    result = invoke(jobs_app, *args)
    assert result.exit_code != 0
    assert problem in str(result.exception)


async def test_a_failed_job_waits_in_the_dead_letters_and_dlq_retry_runs_it_again(
    outbound: Outbound, cli: FeatureService
) -> None:
    async with outbound.worker():
        added = await asyncio.to_thread(invoke, jobs_app, "add", "enrich", "--data", '{"fail_times": 3}',
                                        "--id", "flaky", "--attempts", "2")  # fmt: skip
        assert added.exit_code == 0, added.output
        letter_id = await _letter_of(outbound, "flaky")
        listed = await asyncio.to_thread(invoke, dlq_app, "list")
        assert "Dead letters of jobs" in listed.output
        assert "flaky" in listed.output
        shown = await asyncio.to_thread(invoke, dlq_app, "show", str(letter_id))
        assert "enrich/flaky" in shown.output
        assert "MAXIMUM_ATTEMPTS_REACHED" in shown.output
        retried = await asyncio.to_thread(invoke, dlq_app, "retry", str(letter_id))
        assert retried.exit_code == 0, retried.output
        assert "runs again; letter resolved" in retried.output
        for _ in range(100):
            job = json.loads((await asyncio.to_thread(invoke, jobs_app, "show", "flaky", "--json")).output)
            if job["status"] == "completed":
                break
            await asyncio.sleep(0.1)
    assert (job["status"], job["attempts_made"]) == ("completed", 2)
    again = invoke(dlq_app, "retry", str(letter_id))
    assert "only an open one is retried" in str(again.exception)


async def _letter_of(outbound: Outbound, job_key: str) -> int:
    for _ in range(200):
        with outbound.sessions() as session:
            letters = [letter for letter in list_job_letters(session) if letter.job_key == job_key]
        if letters:
            return letters[0].id
        await asyncio.sleep(0.1)
    raise AssertionError(f"no dead letter for job {job_key}")
