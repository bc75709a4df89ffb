"""Outbound's Temporal Schedules on a real dev server (the time-skipping server runs no
schedules): `outbound schedules sync` is idempotent, the schedules are what an operator
sees and drives with the `temporal` CLI, an update keeps a pause, and a triggered warmup
run resets the database. The session's dev server; each test has its own prefix."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client, ScheduleUpdate, ScheduleUpdateInput
from temporalio.service import RPCError

from db.contacts_repo import add_sender
from db.engine import make_engine, make_session_factory, unit_of_work
from db.models import Sender
from runtime.schedules import FINGERPRINT_MEMO, SCHEDULES
from runtime.settings import Settings
from runtime.temporal import DATA_CONVERTER
from tests.e2e_support import Deployment, TemporalServer, eventually
from tests.support import TEST_SECRET_KEY
from workers.worker import build_workers

pytestmark = pytest.mark.timeout(120)

WARMUP = "outbound-warmup-reset"


@pytest.fixture
def deployment(temporal_server: TemporalServer, sqlite_url: str, tmp_path: Path) -> Deployment:
    return Deployment(temporal_server, sqlite_url, tmp_path, prefix=f"s{uuid.uuid4().hex[:8]}-")


@pytest.fixture
async def client(temporal_server: TemporalServer) -> Client:
    return await Client.connect(temporal_server.address, data_converter=DATA_CONVERTER)


def _describe(deployment: Deployment, name: str) -> dict[str, object]:
    done = deployment.server.temporal(
        "schedule", "describe", "--schedule-id", f"{deployment.prefix}{name}", "--output", "json"
    )
    described: dict[str, object] = json.loads(done.stdout)
    return described


def test_sync_creates_the_schedules_once_and_the_temporal_cli_shows_them(deployment: Deployment) -> None:
    first = deployment.ok("schedules", "sync").stdout
    ids = [definition.schedule_id(deployment.prefix) for definition in SCHEDULES]
    for schedule_id in ids:
        assert f"created  {schedule_id}" in first
    second = deployment.ok("schedules", "sync").stdout
    assert all(f"unchanged  {schedule_id}" in second for schedule_id in ids)
    assert "5 schedules, 0 created or updated" in second

    listed = deployment.server.temporal("schedule", "list").stdout
    assert all(schedule_id in listed for schedule_id in ids)
    warmup = _describe(deployment, WARMUP)
    schedule = warmup["schedule"]
    assert isinstance(schedule, dict)
    assert schedule["policies"] == {"overlapPolicy": "SCHEDULE_OVERLAP_POLICY_SKIP", "catchupWindow": "86400s"}
    start = schedule["action"]["startWorkflow"]
    assert (start["workflowType"]["name"], start["taskQueue"]["name"]) == (
        "WarmupResetWorkflow",
        f"{deployment.prefix}campaigns",
    )
    info = warmup["info"]
    assert isinstance(info, dict)
    assert all(moment.endswith(":00:00Z") for moment in info["futureActionTimes"]), "hourly, on the hour"
    analytics = _describe(deployment, "outbound-analytics-hourly")["schedule"]
    assert isinstance(analytics, dict)
    payload = analytics["action"]["startWorkflow"]["input"]["payloads"][0]["data"]
    assert json.loads(base64.b64decode(payload)) == {"period": "hour"}

    table = deployment.ok("schedules", "list").stdout
    assert all(schedule_id in table for schedule_id in ids)
    assert "active" in table
    assert "out of date" not in table


async def test_an_update_keeps_an_operators_pause(deployment: Deployment, client: Client) -> None:
    deployment.ok("schedules", "sync")
    schedule_id = f"{deployment.prefix}outbound-follow-up"
    deployment.server.temporal("schedule", "toggle", "--schedule-id", schedule_id, "--pause", "--reason", "incident")

    def stale(current: ScheduleUpdateInput) -> ScheduleUpdate:  # as if an older release made it
        schedule = current.description.schedule
        schedule.action.memo = {FINGERPRINT_MEMO: "older-release"}  # type: ignore[union-attr]
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(schedule_id).update(stale)
    assert "out of date" in deployment.ok("schedules", "list").stdout
    synced = await asyncio.to_thread(deployment.ok, "schedules", "sync")
    assert f"updated  {schedule_id}" in synced.stdout
    assert "1 created or updated" in synced.stdout
    description = await client.get_schedule_handle(schedule_id).describe()
    assert (description.schedule.state.paused, description.schedule.state.note) == (True, "incident")
    assert "paused (incident)" in deployment.ok("schedules", "list").stdout


async def test_sync_deletes_a_schedule_an_earlier_release_installed_but_not_a_look_alike(
    deployment: Deployment, client: Client
) -> None:
    deployment.ok("schedules", "sync")
    installed = await client.get_schedule_handle(f"{deployment.prefix}{WARMUP}").describe()
    retired = f"{deployment.prefix}outbound-retired-digest"  # as if an older release defined it
    await client.create_schedule(retired, installed.schedule)
    look_alike = f"{deployment.prefix}outbound-by-hand"  # same id shape, no Outbound fingerprint
    by_hand = installed.schedule
    by_hand.action.memo = {}  # type: ignore[union-attr]
    await client.create_schedule(look_alike, by_hand)
    await asyncio.to_thread(
        eventually,
        lambda: all(name in deployment.server.temporal("schedule", "list").stdout for name in (retired, look_alike)),
        what="both extra schedules to be listed",
    )

    synced = (await asyncio.to_thread(deployment.ok, "schedules", "sync")).stdout

    assert f"deleted  {retired}" in synced
    assert "5 schedules, 0 created or updated, 1 obsolete deleted" in synced
    with pytest.raises(RPCError):
        await client.get_schedule_handle(retired).describe()
    assert (await client.get_schedule_handle(look_alike).describe()).schedule.action is not None
    await client.get_schedule_handle(look_alike).delete()


async def test_a_triggered_warmup_run_resets_counters_and_moves_the_ramp(
    deployment: Deployment, client: Client
) -> None:
    engine = make_engine(deployment.database_url)
    sessions = make_session_factory(engine)
    today = datetime.now(UTC).date()
    with unit_of_work(sessions) as session:
        sender = add_sender(session, "email", "new@outbound.example", "outbox", 10, "UTC", datetime.now(UTC))
        sender.sends_today, sender.quota_day = 10, today - timedelta(days=1)
        sender_id = sender.id
    deployment.ok("senders", "warmup", "new@outbound.example", "--start", "10", "--increment", "5", "--ceiling", "50")
    with unit_of_work(sessions) as session:  # as if the ramp began three days ago
        session.get_one(Sender, sender_id).warmup_began_on = today - timedelta(days=3)
    deployment.ok("schedules", "sync")
    settings = Settings(
        database_url=deployment.database_url,
        task_queue_prefix=deployment.prefix,
        secret_key=SecretStr(TEST_SECRET_KEY),
    )
    workers = build_workers(client, settings, sessions)
    running = asyncio.create_task(workers.run())
    try:
        deployment.server.temporal("schedule", "trigger", "--schedule-id", f"{deployment.prefix}{WARMUP}")
        deadline = time.monotonic() + 30
        while True:
            with sessions() as session:
                row = session.get_one(Sender, sender_id)
            if (row.daily_limit, row.sends_today, row.quota_day) == (25, 0, today):
                break
            assert time.monotonic() < deadline, f"warmup run did not reset the sender: {row.daily_limit=}"
            await asyncio.sleep(0.3)
        listed = await asyncio.to_thread(deployment.ok, "schedules", "list")
        assert f"{deployment.prefix}{WARMUP}" in listed.stdout
    finally:
        await workers.shutdown()
        await asyncio.gather(running, return_exceptions=True)
        engine.dispose()
    description = await client.get_schedule_handle(f"{deployment.prefix}{WARMUP}").describe()
    assert description.info.num_actions == 1
