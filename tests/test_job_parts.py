"""The parts of a job: the queue file, the `http` handler's reading of a service's
answer, and the activity's translation of it for the retry policy."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.jobs import PERMANENT_FAILURE, RETRYABLE_FAILURE, JobActivities
from db.engine import unit_of_work
from db.job_dead_letters import list_job_letters
from db.job_items import add_items, claim_items, item_counts, next_retry_at
from db.jobs import NewJob, enqueue
from db.models import Job, JobItem
from domain.jobs_yaml import JobsFileError, load_jobs_file
from handlers.base import JobDone, JobFailed, JobRequest
from handlers.http_delegation import HttpDelegation, retry_after_seconds
from schemas.jobs import JobStatus, RunItemsInput, RunJobInput
from tests.conftest import Database

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REQUEST = JobRequest("job-1", "enrich", "company", {"domain": "acme.example"}, 0)


# --- the queue file ---------------------------------------------------------------------------


def test_a_queue_file_with_an_unknown_key_a_bad_url_or_a_duplicate_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "queues:\n"
        "  - name: enrich\n    handler: http\n    endpoint: not a url\n    colour: red\n"
        "  - name: Bad Name\n    handler: http\n    endpoint: http://x.example\n"
        "  - name: mail\n    handler: ftp\n"
    )
    with pytest.raises(JobsFileError) as refused:
        load_jobs_file(path)
    problems = "\n".join(refused.value.problems)
    assert f"{path}:4: queues[0].endpoint: Input should be a valid URL" in problems
    assert f"{path}:5: queues[0].colour: Extra inputs are not permitted" in problems
    assert f"{path}:6: queues[1].name: String should match pattern" in problems
    assert f"{path}:10: queues[2].handler: Input should be 'http'" in problems

    path.write_text(
        "queues:\n  - {name: a, handler: http, endpoint: 'http://a.example'}\n"
        "  - {name: a, handler: http, endpoint: 'http://b.example'}\n"
    )
    with pytest.raises(JobsFileError, match=r"queues\[1\]: duplicate queue name 'a' \(also queues\[0\]\)"):
        load_jobs_file(path)
    path.write_text("queues:\n  - {name: a, handler: http}\n")
    with pytest.raises(JobsFileError, match="handler http needs an `endpoint`"):
        load_jobs_file(path)


# --- the http handler ----------------------------------------------------------------------------


def delegation(answer: httpx.Response | Exception, seen: list[httpx.Request] | None = None) -> HttpDelegation:
    def respond(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return HttpDelegation("http://service.example/", SECRET, 5, httpx.Client(transport=httpx.MockTransport(respond)))


def test_the_request_is_signed_for_the_standardwebhooks_package_and_carries_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []
    progress: list[object] = []
    done = delegation(httpx.Response(200, json={"success": True, "result": {"ok": 1}, "progress": 100}), seen).run(
        REQUEST, progress.append
    )
    assert done == JobDone(result={"ok": 1}, progress=100)
    assert progress == [100]
    (request,) = seen
    assert str(request.url) == "http://service.example/internal/process-job"
    assert request.headers["idempotency-key"] == "job-1"
    verified = Webhook(SECRET).verify(request.content, dict(request.headers))
    assert verified == {"jobId": "job-1", "queueName": "enrich", "name": "company", "data": {"domain": "acme.example"},
                        "attemptsMade": 0}  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "retryable", "retry_after"),
    [
        (httpx.Response(200, json={"success": False, "error": "later"}), True, None),
        (httpx.Response(503, headers={"Retry-After": "7"}), True, 7.0),
        (httpx.Response(429, headers={"Retry-After": "120"}), True, 120.0),
        (httpx.Response(408), True, None),
        (httpx.Response(409), True, None),
        (httpx.Response(425), True, None),
        (httpx.Response(400, json={"error": "no such domain"}), False, None),
        (httpx.Response(404), False, None),
        (httpx.Response(422), False, None),
        (httpx.Response(301), False, None),
        (httpx.ConnectError("refused"), True, None),
        (httpx.ReadTimeout("slow"), True, None),
    ],
)
def test_each_answer_is_classified_as_the_issue_of_seed_002_says(
    answer: httpx.Response | Exception, retryable: bool, retry_after: float | None
) -> None:
    with pytest.raises(JobFailed) as failed:
        delegation(answer).run(REQUEST, lambda progress: None)
    assert (failed.value.retryable, failed.value.retry_after) == (retryable, retry_after)


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30", now) == 30.0
    assert retry_after_seconds("Mon, 07 Dec 2026 12:01:30 GMT", now) == 90.0
    assert retry_after_seconds("Mon, 07 Dec 2026 11:00:00 GMT", now) == 0.0, "a date in the past: now"
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("999999999", now) == 24 * 3600.0, "capped at a day"


# --- the activity ----------------------------------------------------------------------------------


class Answers:
    """A handler that fails as told."""

    def __init__(self, failure: JobFailed | None) -> None:
        self.failure = failure

    def run(self, request: JobRequest, report_progress: object) -> JobDone:
        if self.failure is not None:
            raise self.failure
        return JobDone(result={"echo": request.data})


def queued(db: Database) -> int:
    with unit_of_work(db.sessions) as session:
        job_id, _ = enqueue(session, NewJob("enrich", "k1", {"a": 1}, priority=3, attempts=3), datetime.now(UTC))
    return job_id


def test_retry_after_becomes_the_next_retry_delay_and_a_refusal_is_non_retryable(db: Database) -> None:
    job_id = queued(db)
    request = RunJobInput(job_id=job_id, queue="enrich")
    busy = JobActivities(db.sessions, {"enrich": Answers(JobFailed("busy", retryable=True, retry_after=42))})
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(busy.run_job, request)
    assert (raised.value.type, raised.value.non_retryable) == (RETRYABLE_FAILURE, False)
    assert raised.value.next_retry_delay == timedelta(seconds=42)

    refused = JobActivities(db.sessions, {"enrich": Answers(JobFailed("no", retryable=False))})
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(refused.run_job, request)
    assert (raised.value.type, raised.value.non_retryable) == (PERMANENT_FAILURE, True)
    with db.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.error) == (JobStatus.ACTIVE.value, "no"), "the workflow closes it, not the attempt"

    outcome = ActivityEnvironment().run(JobActivities(db.sessions, {"enrich": Answers(None)}).run_job, request)
    assert outcome.status is JobStatus.COMPLETED
    with db.sessions() as session:
        assert session.get_one(Job, job_id).result == {"echo": {"a": 1}}


class Reporting:
    """A handler that reports progress as it goes, as a built-in handler may."""

    def __init__(self, *steps: object) -> None:
        self.steps = steps

    def run(self, request: JobRequest, report_progress: Callable[[object], None]) -> JobDone:
        for step in self.steps:
            report_progress(step)
        return JobDone(result="done", progress=self.steps[-1])


def test_progress_goes_on_the_row_and_into_the_heartbeat_the_web_ui_shows(db: Database) -> None:
    job_id = queued(db)
    environment = ActivityEnvironment()
    heartbeats: list[tuple[object, ...]] = []
    environment.on_heartbeat = lambda *details: heartbeats.append(details)
    large = {"log": "x" * 2000}
    activities = JobActivities(db.sessions, {"enrich": Reporting(25, {"stage": "scoring", "pct": 60}, large)})
    environment.run(activities.run_job, RunJobInput(job_id=job_id, queue="enrich"))
    assert heartbeats == [(25,), ({"stage": "scoring", "pct": 60},), ()], "large progress stays out of the heartbeat"
    with db.sessions() as session:
        assert session.get_one(Job, job_id).progress == large


class Recording:
    """A handler that records the items it is given and fails those it is told to."""

    def __init__(self, refuse: frozenset[int] = frozenset(), busy: frozenset[int] = frozenset()) -> None:
        self.seen: list[str] = []
        self.refuse, self.busy = refuse, busy

    def run(self, request: JobRequest, report_progress: Callable[[object], None]) -> JobDone:
        self.seen.append(request.job_key)
        n = request.data["n"]
        if n in self.refuse:
            raise JobFailed("not mine", retryable=False)
        if n in self.busy:
            raise JobFailed("busy", retryable=True, retry_after=7)
        return JobDone(result=n)


def claimed_items(db: Database, count: int) -> tuple[int, list[int]]:
    with unit_of_work(db.sessions) as session:
        job_id, _ = enqueue(
            session, NewJob("enrich", "walk", {}, priority=3, attempts=3, items=count), datetime.now(UTC)
        )
        add_items(session, job_id, ({"n": n} for n in range(1, count + 1)), datetime.now(UTC))
        ids = claim_items(session, job_id, count, "run:1", datetime.now(UTC))
    return job_id, ids


def test_a_batch_gives_each_item_its_own_outcome_and_puts_the_busy_back_until_its_retry_time(db: Database) -> None:
    job_id, ids = claimed_items(db, 5)
    handler = Recording(refuse=frozenset({2}), busy=frozenset({4}))
    activities = JobActivities(db.sessions, {"enrich": handler})
    before = datetime.now(UTC)
    result = ActivityEnvironment().run(
        activities.run_items, RunItemsInput(job_id=job_id, queue="enrich", item_ids=ids, attempts=3)
    )
    assert handler.seen == ["walk:1", "walk:2", "walk:3", "walk:4", "walk:5"]
    assert (result.completed, result.failed, result.retrying) == (3, 1, 1)
    with db.sessions() as session:
        counts = item_counts(session, job_id)
        letters = list_job_letters(session)
        busy = session.get_one(JobItem, ids[3])
        retry_at = next_retry_at(session, job_id)
        too_soon = claim_items(session, job_id, 10, "run:2", datetime.now(UTC))
        when_due = claim_items(session, job_id, 10, "run:3", before + timedelta(seconds=8))
    assert (counts.completed, counts.failed, counts.waiting) == (3, 1, 1), "the busy one waits in the table"
    assert (busy.attempts, busy.error, busy.claim_token) == (1, "busy", None)
    assert retry_at is not None
    assert before + timedelta(seconds=7) <= retry_at <= before + timedelta(seconds=8), "the service's Retry-After"
    assert (too_soon, when_due) == ([], [ids[3]]), "claimed again once its time has come, not before"
    assert [(letter.error_type, letter.error) for letter in letters] == [("JobRefused", "item 2: not mine")]


def test_an_item_out_of_attempts_in_a_batch_fails_with_its_dead_letter(db: Database) -> None:
    job_id, ids = claimed_items(db, 1)
    activities = JobActivities(db.sessions, {"enrich": Recording(busy=frozenset({1}))})
    result = ActivityEnvironment().run(
        activities.run_items, RunItemsInput(job_id=job_id, queue="enrich", item_ids=ids, attempts=1)
    )
    assert (result.completed, result.failed, result.retrying) == (0, 1, 0)
    with db.sessions() as session:
        letters = list_job_letters(session)
    assert [(letter.error_type, letter.retry_state) for letter in letters] == [
        ("JobAttemptFailed", "MAXIMUM_ATTEMPTS_REACHED")
    ]


def test_a_batch_retried_after_its_worker_died_starts_at_the_item_its_heartbeat_named(db: Database) -> None:
    job_id, ids = claimed_items(db, 5)
    first = Recording()
    ActivityEnvironment().run(
        JobActivities(db.sessions, {"enrich": first}).run_items,
        RunItemsInput(job_id=job_id, queue="enrich", item_ids=ids[:2], attempts=3),
    )  # items 1 and 2 finished before the crash; item 3 was under way
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=2, heartbeat_details=[2])
    again = Recording()
    result = environment.run(
        JobActivities(db.sessions, {"enrich": again}).run_items,
        RunItemsInput(job_id=job_id, queue="enrich", item_ids=ids, attempts=3),
    )
    assert again.seen == ["walk:3", "walk:4", "walk:5"], "nothing before the heartbeat's position is sent again"
    assert result.completed == 3
    with db.sessions() as session:
        assert item_counts(session, job_id).completed == 5
