"""Per-task-queue concurrency and rate limits: read from `OUTBOUND_*` settings and handed
to the Temporal workers that poll each queue."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runtime.settings import Settings
from tests.support import Outbound
from workers.worker import build_workers

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _limits_from(monkeypatch: pytest.MonkeyPatch, **environment: str) -> Settings:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_a_queue_override_beats_the_defaults_and_the_campaign_queue_is_never_throttled_by_default(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    settings = _limits_from(
        monkeypatch,
        OUTBOUND_MAX_CONCURRENT_ACTIVITIES="32",
        OUTBOUND_MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND="50",
        OUTBOUND_QUEUE_LIMITS__SMS__MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND="1",
        OUTBOUND_QUEUE_LIMITS__EMAIL__MAX_CONCURRENT_ACTIVITIES="96",
    )

    assert settings.worker_limits("sms") == {"max_concurrent_activities": 32, "max_task_queue_activities_per_second": 1}
    assert settings.worker_limits("email") == {
        "max_concurrent_activities": 96,
        "max_task_queue_activities_per_second": 50,
    }
    assert settings.worker_limits("campaigns") == {"max_concurrent_activities": 32}
    assert settings.activity_threads() == 96 + 8, "threads for the largest queue's slots"
    assert settings.control_threads() == 32, "the campaigns queue's own threads, one per slot"
    assert settings.database_connections() == 96 + 8 + 32


def test_an_unknown_queue_or_setting_name_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    with pytest.raises(ValidationError, match="queue_limits"):
        _limits_from(monkeypatch, OUTBOUND_QUEUE_LIMITS__FAX__MAX_CONCURRENT_ACTIVITIES="2")
    monkeypatch.delenv("OUTBOUND_QUEUE_LIMITS__FAX__MAX_CONCURRENT_ACTIVITIES")
    with pytest.raises(ValidationError, match="max_concurent"):
        _limits_from(monkeypatch, OUTBOUND_QUEUE_LIMITS__SMS__MAX_CONCURENT="2")


async def test_each_worker_polls_its_queue_with_that_queues_limits(outbound: Outbound) -> None:
    outbound.overrides = {
        "max_task_queue_activities_per_second": 20.0,
        "queue_limits": {"sms": {"max_task_queue_activities_per_second": 1.0, "max_concurrent_activities": 4}},
    }
    workers = build_workers(outbound.client, outbound.settings, outbound.sessions)
    try:
        configs = {worker.task_queue.removeprefix(outbound.prefix): worker.config() for worker in workers.workers}
    finally:
        workers.close_executors()

    assert configs["sms"].get("max_task_queue_activities_per_second") == 1.0
    assert configs["sms"].get("max_concurrent_activities") == 4
    assert configs["voicemail"].get("max_task_queue_activities_per_second") == 20.0
    assert configs["voicemail"].get("max_concurrent_activities") == 16
    assert configs["campaigns"].get("max_task_queue_activities_per_second") is None
