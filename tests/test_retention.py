"""Retention purges exactly the old details and keeps recent rows and the aggregates
(SQLite and PostgreSQL): directly, through `RetentionWorkflow` on a worker, and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import typer
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from db.engine import unit_of_work
from db.events import assign_positions, record_event
from db.models import (
    CampaignStepStats,
    Contact,
    DeadLetter,
    Event,
    InboundMessage,
    Step,
    StepExecution,
    WebhookAttempt,
    WebhookDelivery,
)
from db.retention import cutoffs, event_cutoff, purge
from db.webhooks import add_endpoint
from runtime.names import campaign_queue
from runtime.settings import RetentionSettings
from schemas.events import CampaignData, EventType
from schemas.retention_io import RetentionCounts
from starter.cli_retention import retention_app
from tests.conftest import Database
from tests.support import EMAIL_STEP, Outbound, campaign_spec, people, seed

pytestmark = pytest.mark.timeout(90)
DAY = timedelta(days=1)


@dataclass
class Seeded:
    old_inbound: int
    new_inbound: int
    old_sent: int
    new_failed: int
    old_open: int
    old_resolved: int
    new_resolved: int
    old_open_letter: int


def seed_history(db: Database, now: datetime) -> Seeded:
    """Rows on both sides of the default ages (90 days inbound, 30 days errors)."""
    campaign = seed(db.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 4)})
    with unit_of_work(db.sessions) as session:
        step = session.scalars(select(Step).where(Step.campaign_id == campaign)).one()
        contacts = list(session.scalars(select(Contact.id).order_by(Contact.id)))

        def inbound(key: str, age: timedelta) -> int:
            row = InboundMessage(
                channel="email",
                provider_message_id=key,
                text_body="Thanks, call me",
                html_body="<p>Thanks</p>",
                headers={"From": "someone"},
                classification="reply",
                contact_id=contacts[0],
                received_at=now - age,
                created_at=now - age,
            )
            session.add(row)
            session.flush()
            return row.id

        def execution(contact: int, status: str, age: timedelta) -> int:
            row = StepExecution(
                campaign_id=campaign,
                step_id=step.id,
                contact_id=contact,
                status=status,
                error="ProviderTransient: 503",
                updated_at=now - age,
            )
            session.add(row)
            session.flush()
            return row.id

        def letter(execution_id: int, status: str, age: timedelta) -> int:
            row = DeadLetter(
                execution_id=execution_id,
                campaign_id=campaign,
                error_type="ProviderTransient",
                error="503",
                attempts=3,
                status=status,
                created_at=now - age,
                resolved_at=now - age if status != "open" else None,
            )
            session.add(row)
            session.flush()
            return row.id

        seeded = Seeded(
            old_inbound=inbound("old", 91 * DAY),
            new_inbound=inbound("new", 89 * DAY),
            old_sent=execution(contacts[0], "SENT", 31 * DAY),
            new_failed=execution(contacts[1], "FAILED", 29 * DAY),
            old_open=execution(contacts[2], "SCHEDULED", 31 * DAY),
            old_resolved=0,
            new_resolved=0,
            old_open_letter=0,
        )
        old_failed = execution(contacts[3], "FAILED", 31 * DAY)
        seeded.old_resolved = letter(seeded.old_sent, "resolved", 31 * DAY)
        seeded.new_resolved = letter(seeded.new_failed, "discarded", 29 * DAY)
        seeded.old_open_letter = letter(old_failed, "open", 31 * DAY)
        session.add(
            CampaignStepStats(
                campaign_id=campaign,
                step_id=step.id,
                period="day",
                bucket_start=now - 100 * DAY,
                sent=7,
                computed_at=now,
            )
        )
    return seeded


def assert_purged_exactly_the_old_rows(db: Database, seeded: Seeded) -> None:
    with db.sessions() as session:
        old = session.get_one(InboundMessage, seeded.old_inbound)
        assert (old.text_body, old.html_body, old.headers) == (None, None, {})
        assert old.purged_at is not None
        assert (old.classification, old.contact_id, old.provider_message_id) == ("reply", old.contact_id, "old")
        assert old.contact_id is not None
        new = session.get_one(InboundMessage, seeded.new_inbound)
        assert (new.text_body, new.headers, new.purged_at) == ("Thanks, call me", {"From": "someone"}, None)

        assert session.get_one(StepExecution, seeded.old_sent).error is None
        assert session.get_one(StepExecution, seeded.new_failed).error is not None
        assert session.get_one(StepExecution, seeded.old_open).error is not None, "open rows are not finished"

        assert session.get_one(DeadLetter, seeded.old_resolved).error == ""
        assert session.get_one(DeadLetter, seeded.new_resolved).error == "503"
        assert session.get_one(DeadLetter, seeded.old_open_letter).error == "503", "open letters keep their error"
        assert session.scalars(select(CampaignStepStats.sent)).one() == 7


def test_purge_clears_exactly_the_old_details_and_a_second_run_changes_nothing(db: Database) -> None:
    now = datetime.now(UTC)
    seeded = seed_history(db, now)
    inbound_before, errors_before = cutoffs(now, RetentionSettings())
    with unit_of_work(db.sessions) as session:
        dry = purge(session, now, inbound_before, errors_before, dry_run=True)
    assert (dry.inbound_messages, dry.executions, dry.dead_letters) == (1, 2, 1)
    with db.sessions() as session:
        assert session.get_one(InboundMessage, seeded.old_inbound).text_body is not None, "a dry run writes nothing"

    with unit_of_work(db.sessions) as session:
        counts = purge(session, now, inbound_before, errors_before)
    assert (counts.inbound_messages, counts.executions, counts.dead_letters) == (1, 2, 1)
    assert_purged_exactly_the_old_rows(db, seeded)
    with unit_of_work(db.sessions) as session:
        again = purge(session, now, inbound_before, errors_before)
    assert (again.inbound_messages, again.executions, again.dead_letters) == (0, 0, 0)


async def test_the_retention_workflow_started_as_the_schedule_does_purges_on_a_worker(
    outbound: Outbound, db: Database, workflow_env: WorkflowEnvironment
) -> None:
    now = await workflow_env.get_current_time()  # the shared test server's clock may be ahead
    seeded = seed_history(db, now)
    async with outbound.worker():
        counts = await workflow_env.client.execute_workflow(
            "RetentionWorkflow",
            args=[{}],
            id=f"{outbound.prefix}retention",
            task_queue=campaign_queue(outbound.prefix),
            result_type=RetentionCounts,
        )
    assert (counts.inbound_messages, counts.executions, counts.dead_letters) == (1, 2, 1)
    assert_purged_exactly_the_old_rows(db, seeded)


def test_the_cli_dry_run_counts_and_the_run_purges(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded = seed_history(db, datetime.now(UTC))
    monkeypatch.setenv("OUTBOUND_DATABASE_URL", db.url)
    monkeypatch.setenv("COLUMNS", "200")
    root = typer.Typer()  # mounted as `starter/cli.py` mounts it
    root.add_typer(retention_app, name="retention")
    dry = CliRunner().invoke(root, ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would purge: 1 inbound message bodies" in dry.output
    monkeypatch.setenv("OUTBOUND_RETENTION__ERROR_PAYLOAD_DAYS", "60")  # only the inbound body is old enough
    done = CliRunner().invoke(root, ["retention", "run"])
    assert "purged: 1 inbound message bodies" in done.output
    assert "0 execution errors and 0 dead-letter errors" in done.output
    with db.sessions() as session:
        assert session.get_one(InboundMessage, seeded.old_inbound).text_body is None
        assert session.get_one(StepExecution, seeded.old_sent).error is not None


def test_old_events_go_once_their_deliveries_have_ended_and_one_still_waiting_stays(db: Database) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    data = CampaignData(campaign_id=1, name="x", status="PAUSED", at=old)
    with unit_of_work(db.sessions) as session:
        for when in (old, old, old, now):
            record_event(session, EventType.CAMPAIGN_PAUSED, data, when)
        assign_positions(session)
        delivered, waiting, _never_delivered, recent = session.scalars(select(Event.id).order_by(Event.id)).all()
        endpoint = add_endpoint(session, "https://example.com/hook", [], "sealed", now)
        for event_id, status in ((delivered, "delivered"), (waiting, "pending")):
            session.add(
                WebhookDelivery(endpoint_id=endpoint, event_id=event_id, position=event_id, status=status, attempts=1,
                                next_attempt_at=now, created_at=old, updated_at=old)
            )  # fmt: skip
        session.flush()
        first = session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.event_id == delivered)).one()
        session.add(WebhookAttempt(delivery_id=first, attempt=1, attempted_at=old, status_code=204, latency_ms=3))
    cutoff = event_cutoff(now, RetentionSettings())
    inbound_before, errors_before = cutoffs(now, RetentionSettings())
    with unit_of_work(db.sessions) as session:
        assert purge(session, now, inbound_before, errors_before, dry_run=True, events_before=cutoff).events == 2
    with unit_of_work(db.sessions) as session:
        assert purge(session, now, inbound_before, errors_before, events_before=cutoff).events == 2
    with db.sessions() as session:
        assert set(session.scalars(select(Event.id))) == {waiting, recent}, "a waiting delivery keeps its event"
        assert session.scalars(select(WebhookAttempt.id)).all() == []
        assert [row.event_id for row in session.scalars(select(WebhookDelivery))] == [waiting]
