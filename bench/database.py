"""The benchmark's database: a fresh one per campaign size, seeded in one transaction."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from db.campaigns_repo import create_campaign
from db.contacts_repo import add_sender, import_contacts
from db.engine import SessionFactory, unit_of_work
from db.models import Step, StepExecution
from domain.contacts_csv import ContactRecord
from schemas.campaign_file import CampaignFile
from schemas.enums import ExecutionStatus

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_database(choice: str, admin_url: str, scratch: Path, label: str, *, keep: bool) -> Iterator[str]:
    """A database URL for one campaign size.

    `postgresql` creates (and afterwards drops) a new database through `admin_url`;
    `sqlite` makes a new file in `scratch`; anything else is a URL used as it is.
    """
    if choice == "sqlite":
        yield f"sqlite:///{scratch / f'outbound-{label}.db'}"
        return
    if choice != "postgresql":
        yield choice
        return
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"outbound_bench_{label}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def contacts(prefix: str, count: int) -> Iterator[ContactRecord]:
    """`count` contacts with a distinct email and a phone each (phones repeat every 10,000,
    which nothing here minds: contacts are keyed by email); streamed, never a list."""
    for index in range(count):
        yield ContactRecord(
            line=index + 2,
            email=f"{prefix}{index}@example.com",
            phone=f"+1202555{index % 10_000:04d}",
            first_name=f"Person{index}",
            company="Acme",
        )


@dataclass(frozen=True)
class Seeded:
    campaign_id: int
    seconds: float


def campaign_spec(group: str, email_sender: str, phone_sender: str, wait: str) -> CampaignFile:
    return CampaignFile.model_validate(
        {
            "name": f"Benchmark {group}",
            "timezone": "UTC",
            "lead_groups": [group],
            "senders": {"email": [email_sender], "sms": [phone_sender], "voicemail": [phone_sender]},
            "window": "always",
            "postal_address": "Outbound Benchmarks, 1 Example Street, Springfield",
            "send_gap": "0s",
            "quiet_hours": False,
            "steps": [
                {"channel": "email", "day": 0, "subject": "Hi {{ first_name }}", "body": "Hello {{ first_name }}"},
                {"channel": "sms", "wait": wait, "body": "Hi {{ first_name }}, a quick follow-up"},
                {"channel": "voicemail", "wait": wait, "say": "Hi {{ first_name }}, calling about {{ company }}"},
            ],
        }
    )


def seed(sessions: SessionFactory, count: int, wait: str) -> Seeded:
    """N contacts in one lead group, one sender per channel (limit above N), a 3-step campaign.

    Names are unique per run, so a database given with `--database-url` can be reused."""
    tag = secrets.token_hex(3)
    group = f"bench-{count}-{tag}"
    email_sender = f"bench-{tag}@outbound.example"
    phone_sender = f"+1500555{secrets.randbelow(10_000):04d}"
    now = datetime.now(UTC)
    started = time.perf_counter()
    with unit_of_work(sessions) as session:
        import_contacts(session, contacts(f"c{tag}-", count), group, now)
        for channel, address in (("email", email_sender), ("sms", phone_sender), ("voicemail", phone_sender)):
            add_sender(session, channel, address, "outbox", max(10 * count, 1000), "UTC", now)
        campaign_id = create_campaign(session, campaign_spec(group, email_sender, phone_sender, wait), now)
    return Seeded(campaign_id, time.perf_counter() - started)


@dataclass(frozen=True)
class Sends:
    """Messages sent and when the first and the last went out."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None

    @property
    def span_s(self) -> float:
        return (self.last - self.first).total_seconds() if self.first and self.last else 0.0

    @property
    def per_second(self) -> float:
        return self.count / self.span_s if self.span_s > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {"sent": self.count, "first_to_last_s": round(self.span_s, 2), "per_s": round(self.per_second, 1)}


@dataclass(frozen=True)
class SendSummary:
    total: Sends
    by_step: dict[int, Sends]
    by_status: dict[str, int]


def sent_by_step(sessions: SessionFactory, campaign_id: int) -> dict[int, int]:
    return {position: sends.count for position, sends in _sends_by_step(sessions, campaign_id).items()}


def _sends_by_step(sessions: SessionFactory, campaign_id: int) -> dict[int, Sends]:
    with sessions() as session:
        rows = session.execute(
            select(Step.position, func.count(), func.min(StepExecution.sent_at), func.max(StepExecution.sent_at))
            .join(StepExecution, StepExecution.step_id == Step.id)
            .where(StepExecution.campaign_id == campaign_id, StepExecution.status == ExecutionStatus.SENT.value)
            .group_by(Step.position)
        ).all()
    return {position: Sends(count, first, last) for position, count, first, last in rows}


def summarise_sends(sessions: SessionFactory, campaign_id: int) -> SendSummary:
    by_step = _sends_by_step(sessions, campaign_id)
    with sessions() as session:
        statuses = session.execute(
            select(StepExecution.status, func.count())
            .where(StepExecution.campaign_id == campaign_id)
            .group_by(StepExecution.status)
        ).all()
    firsts = [s.first for s in by_step.values() if s.first]
    lasts = [s.last for s in by_step.values() if s.last]
    total = Sends(sum(s.count for s in by_step.values()), min(firsts, default=None), max(lasts, default=None))
    return SendSummary(total, by_step, {status: count for status, count in statuses})


@dataclass(frozen=True)
class AfterGate:
    """What went out after a cancel or pause closed the gate: it closes in one small write,
    so only sends that had passed it before may finish, and none may begin after it (until
    a resume opens it again)."""

    last_send_s: float | None  # seconds from the request to the last message sent (None: none after)
    sent_after: int  # messages sent after the request was sent (passed the gate before it closed)
    began_after: int  # messages whose send passed the gate after the acknowledgement: must be 0
    acknowledged_s: float = 0.0  # from sending the request to its acknowledgement (the gate committed)
    resume_acknowledged_s: float | None = None  # a pause's resume: from sending it to its answer
    first_send_after_resume_s: float | None = None  # a pause's resume: from sending it to the next send


def after_gate(
    sessions: SessionFactory,
    campaign_id: int,
    requested_at: datetime,
    acknowledged_at: datetime,
    reopened_at: datetime | None = None,
    reopen_acknowledged_at: datetime | None = None,
) -> AfterGate:
    """Measure the gate closing at `requested_at`; for a pause, `reopened_at` is when the
    resume was sent, and only what happened before it counts."""
    sent = StepExecution.status == ExecutionStatus.SENT.value
    in_campaign = StepExecution.campaign_id == campaign_id
    sent_window = [StepExecution.sent_at > requested_at]
    began_window = [StepExecution.sending_since > acknowledged_at]
    if reopened_at is not None:
        sent_window.append(StepExecution.sent_at < reopened_at)
        began_window.append(StepExecution.sending_since < reopened_at)
    with sessions() as session:
        last = session.scalar(select(func.max(StepExecution.sent_at)).where(in_campaign, sent, *sent_window))
        sent_after = session.scalar(select(func.count()).where(in_campaign, sent, *sent_window))
        began_after = session.scalar(select(func.count()).where(in_campaign, *began_window))
        first_after_reopen = (
            session.scalar(
                select(func.min(StepExecution.sending_since)).where(
                    in_campaign, StepExecution.sending_since >= reopened_at
                )
            )
            if reopened_at is not None
            else None
        )
    seconds = (last - requested_at).total_seconds() if last else None
    acknowledged = (acknowledged_at - requested_at).total_seconds()
    gate = AfterGate(seconds, int(sent_after or 0), int(began_after or 0), acknowledged)
    if reopened_at is not None and reopen_acknowledged_at is not None:
        gate = replace(
            gate,
            resume_acknowledged_s=(reopen_acknowledged_at - reopened_at).total_seconds(),
            first_send_after_resume_s=(first_after_reopen - reopened_at).total_seconds()
            if first_after_reopen
            else None,
        )
    return gate
