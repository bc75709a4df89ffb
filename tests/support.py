"""Building blocks for workflow tests: seeded campaigns, a worker, and what the outbox holds."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from db.campaigns_repo import create_campaign
from db.contacts_repo import add_sender, add_suppression, import_contacts
from db.engine import SessionFactory, unit_of_work
from db.models import Contact, Job, Sender, StepExecution
from domain.contacts_csv import ContactRecord
from providers.base import Provider
from runtime.secrets import new_secret_key
from runtime.settings import OutboxFaults, Settings
from schemas.campaign_file import CampaignFile
from schemas.jobs import JobStatus
from schemas.workflow_io import Tuning
from starter.client import OutboundClient
from starter.job_producer import job_runs_closed
from workers.worker import build_workers

EMAIL_SENDER = "sales@outbound.example"
PHONE_SENDER = "+15005550006"


ResultT = TypeVar("ResultT")


def people(prefix: str, count: int, *, start: int = 0, timezone: str | None = None) -> list[ContactRecord]:
    """`count` contacts with an email and a phone each; `prefix` keeps groups apart."""
    return [
        ContactRecord(
            line=index + 2,
            email=f"{prefix}{index}@example.com",
            phone=f"+1202555{index:04d}",
            first_name=f"Person{index}",
            company="Acme",
            timezone=timezone,
        )
        for index in range(start, start + count)
    ]


POSTAL_ADDRESS = "Outbound Test Ltd, 1 Test Street, Springfield, 12345, USA"
# The deployment key of in-process workers: every email carries a signed unsubscribe link.
TEST_SECRET_KEY = new_secret_key()
FINISHED_JOBS = [status.value for status in JobStatus if status.finished]
# A behaviour that must hold whether a message has its own send activity or shares a batch
# (the `send_batch_size` fixture, overridden per test).
EITHER_BATCH_SIZE = pytest.mark.parametrize("send_batch_size", [1, 20], ids=["one-per-activity", "batches-of-20"])


def campaign_spec(steps: Sequence[dict[str, Any]], **overrides: Any) -> CampaignFile:
    data: dict[str, Any] = {
        "name": "Test campaign",
        "timezone": "UTC",
        "lead_groups": ["A"],
        "senders": {"email": [EMAIL_SENDER], "sms": [PHONE_SENDER], "voicemail": [PHONE_SENDER]},
        "window": "always",
        "quiet_hours": False,
        "postal_address": POSTAL_ADDRESS,
        "steps": list(steps),
    }
    data.update(overrides)
    return CampaignFile.model_validate(data)


EMAIL_STEP = {"channel": "email", "subject": "Hi {{ first_name }}", "body": "Hello {{ first_name | default('there') }}"}
SMS_STEP = {"channel": "sms", "body": "Hi {{ first_name }}, quick follow-up", "wait": "1d"}
VOICEMAIL_STEP = {"channel": "voicemail", "say": "Hi {{ first_name }}, calling about {{ company }}", "wait": "2d"}
THREE_STEPS = [EMAIL_STEP, SMS_STEP, VOICEMAIL_STEP]


def seed(
    sessions: SessionFactory,
    spec: CampaignFile,
    groups: dict[str, Iterable[ContactRecord]],
    *,
    daily_limit: int = 10_000,
    suppress: Iterable[str] = (),
    sender_timezone: str = "UTC",
) -> int:
    now = datetime.now(UTC)
    with unit_of_work(sessions) as session:
        for name, records in groups.items():
            import_contacts(session, records, name, now)
        for value in suppress:
            add_suppression(session, value, "test", now)
        for channel, addresses in (
            ("email", spec.senders.email),
            ("sms", spec.senders.sms),
            ("voicemail", spec.senders.voicemail),
        ):
            for address in addresses:
                add_sender(session, channel, address, "outbox", daily_limit, sender_timezone, now)
    with unit_of_work(sessions) as session:
        return create_campaign(session, spec, now)


@dataclass
class Outbound:
    """One isolated deployment inside a test: its own task queues, database and outbox."""

    client: Client
    sessions: SessionFactory
    outbox: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}-")
    faults: OutboxFaults = field(default_factory=OutboxFaults)
    database_url: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # more settings (secret key, providers)
    real_server: bool = False  # a dev server rather than the time-skipping test server
    send_batch_size: int = 1  # messages per send activity, unless a launch's tuning says

    @property
    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.database_url or "sqlite://",
            "outbox_dir": self.outbox,
            "outbox_faults": self.faults,
            "task_queue_prefix": self.prefix,
            "max_concurrent_activities": 16,
            "secret_key": SecretStr(TEST_SECRET_KEY),
        }
        return Settings(**(values | self.overrides))

    @asynccontextmanager
    async def worker(self, providers: dict[str, Provider] | None = None) -> AsyncIterator[None]:
        # The time-skipping test server mishandles eager activity dispatch now and then
        # ("invalid history builder state"), so tests ask for activities the normal way.
        workers = build_workers(
            self.client, self.settings, self.sessions, providers, disable_eager_activity_execution=True
        )
        task = asyncio.create_task(workers.run())
        try:
            yield
        finally:
            if not self.real_server:
                await self._finished_jobs_closed()
            await workers.shutdown()
            await asyncio.gather(task, return_exceptions=True)

    async def _finished_jobs_closed(self, timeout: float = 10) -> None:
        """A job's row says finished before its workflow's last task has run. Stopping the
        worker in between leaves that task on a queue nobody polls, and the shared
        time-skipping server then stops skipping time for every later test: so the worker
        stays until the workflows of finished jobs have closed (bounded, best effort)."""
        with contextlib.suppress(Exception):  # never hides the test's own failure
            with self.sessions() as session:
                finished = session.execute(select(Job.queue, Job.job_key).where(Job.status.in_(FINISHED_JOBS))).all()
            await job_runs_closed(self.client, [(queue, key) for queue, key in finished], self.prefix, timeout)

    @asynccontextmanager
    async def second_client(self) -> AsyncIterator[Outbound]:
        """The same deployment seen through another connection, as a second worker
        process would (one client may not register two workers on one task queue)."""
        config = self.client.service_client.config
        client = await Client.connect(
            config.target_host, namespace=self.client.namespace, data_converter=self.client.data_converter
        )
        yield Outbound(
            client,
            self.sessions,
            self.outbox,
            self.prefix,
            self.faults,
            self.database_url,
            self.overrides,
            self.real_server,
            self.send_batch_size,
        )

    async def launch(
        self, campaign_id: int, *, start_delay_seconds: int = 0, tuning: Tuning | None = None
    ) -> WorkflowHandle[Any, Any]:
        """Launch the way the app does (the client API), with test-sized tuning. On the
        time-skipping test server, continue-as-new drains its sends instead of handing them
        over: that server stops skipping time once a closed run leaves activities behind
        (a real server drops them), and sends do not heartbeat: a heartbeating activity left
        behind stops it skipping time too. Both are tested on the dev server."""
        client = OutboundClient(self.client, self.prefix)
        tuning = tuning or Tuning()
        if "send_batch_size" not in tuning.model_fields_set:
            tuning = tuning.model_copy(update={"send_batch_size": self.send_batch_size})
        if not self.real_server:
            tuning = tuning.model_copy(update={"hand_over_at_continue_as_new": False, "send_heartbeat_seconds": None})
        return await client.launch(campaign_id, start_delay_seconds=start_delay_seconds, tuning=tuning)

    def step_handle(self, campaign_id: int, position: int) -> WorkflowHandle[Any, Any]:
        from runtime.names import step_workflow_id

        return self.client.get_workflow_handle(step_workflow_id(campaign_id, position, self.prefix))

    def files(self, channel: str) -> list[Path]:
        folder = self.outbox / channel
        return sorted(folder.glob("*.eml" if channel == "email" else "*.json")) if folder.exists() else []

    def counts(self, campaign_id: int) -> dict[tuple[int, str], int]:
        """(step position, status) -> rows."""
        from db.models import Step

        with self.sessions() as session:
            rows = session.execute(
                select(Step.position, StepExecution.status, func.count())
                .join(Step, Step.id == StepExecution.step_id)
                .where(StepExecution.campaign_id == campaign_id)
                .group_by(Step.position, StepExecution.status)
            ).all()
        return {(position, status): count for position, status, count in rows}

    def contact_id(self, email: str) -> int:
        with self.sessions() as session:
            found = session.scalar(select(Contact.id).where(Contact.email == email))
            assert found is not None
            return found


class CountingProvider:
    """The real outbox provider, counting how often each message is handed to it."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.sends: dict[int, int] = {}

    def send(self, message: Any) -> Any:
        self.sends[message.execution_id] = self.sends.get(message.execution_id, 0) + 1
        return self.inner.send(message)

    def find_sent(self, message: Any) -> Any:
        return self.inner.find_sent(message)


async def closed_result(handle: WorkflowHandle[Any, ResultT], timeout: float = 120) -> ResultT:
    """`handle.result()`, asked again when the time-skipping test server ends its long poll
    for the close event with an empty page (the SDK then raises "No completion event found"),
    which it did once in a full run while the workflow still had a timer and an activity to
    go. A real server's long poll does not end that way."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await handle.result()
        except RuntimeError as error:
            if "No completion event found" not in str(error) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def save_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With OUTBOUND_RECORD_HISTORIES=1, keep this run's history for the replay test."""
    import os

    if os.environ.get("OUTBOUND_RECORD_HISTORIES") != "1":
        return
    import json

    history = await handle.fetch_history()
    folder = Path(__file__).parent / "histories"
    folder.mkdir(exist_ok=True)
    record = {"workflow_id": handle.id, "history": json.loads(history.to_json())}
    (folder / f"{name}.json").write_text(json.dumps(record, indent=1))


async def start_of_a_day(workflow_env: WorkflowEnvironment) -> date:
    """Moves the test server's clock to five minutes past its next midnight (UTC, the test
    senders' time zone) and returns that day. The shared server's clock is wherever earlier
    tests left it, so a test that counts a mailbox's day (its daily limit, its next day)
    starts here rather than perhaps minutes before that day ends."""
    now = (await workflow_env.get_current_time()).astimezone(UTC)
    day = now.date() + timedelta(days=1)
    await workflow_env.sleep(datetime.combine(day, time(0, 5), tzinfo=UTC) - now)
    return day


async def email_quota_used_today(outbound: Outbound, workflow_env: WorkflowEnvironment, used: int) -> date:
    """As if other campaigns already sent `used` emails from the mailbox today (the test
    server's day, which is what the quota claim compares with, just begun); returns that day."""
    today = await start_of_a_day(workflow_env)
    with unit_of_work(outbound.sessions) as session:
        session.execute(update(Sender).where(Sender.channel == "email").values(sends_today=used, quota_day=today))
    return today
