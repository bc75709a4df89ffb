"""`outbound dlq retry` through a real worker on the time-skipping server (SQLite and PostgreSQL).

A dead letter is made the production way (the outbox rejects one recipient permanently),
the campaign completes, and the letter is retried with the CLI as an operator would.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import typer
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from db.contacts_repo import stop_contact
from db.engine import unit_of_work
from db.models import Campaign, DeadLetter, StepExecution
from providers.outbox import OutboxProvider
from runtime.names import dead_letter_retry_workflow_id
from runtime.settings import OutboxFaults
from schemas.dead_letter_io import DeadLetterRetryResult
from schemas.enums import CampaignStatus, SkipReason
from schemas.workflow_io import Tuning
from starter.cli_dlq import dlq_app
from starter.dead_letter_client import start_dead_letter_retry
from tests.support import EMAIL_STEP, CountingProvider, Outbound, campaign_spec, email_quota_used_today, people, seed

pytestmark = pytest.mark.timeout(120)
QUICK_RETRIES = Tuning(retry_maximum_attempts=2, retry_initial_seconds=1, retry_max_interval_seconds=1)


async def dead_lettered_campaign(outbound: Outbound) -> tuple[int, DeadLetter]:
    """Two contacts, the first rejected for good: a COMPLETED campaign with one dead letter."""
    outbound.faults = OutboxFaults(permanent_failure_marker="a0@")
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)})
    async with outbound.worker():
        progress = await (await outbound.launch(campaign)).result()
    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    outbound.faults = OutboxFaults()  # the operator fixed the cause
    with outbound.sessions() as session:
        letter = session.scalars(select(DeadLetter)).one()
    return campaign, letter


def cli(outbound: Outbound, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    host = outbound.client.service_client.config.target_host
    for name, value in {
        "OUTBOUND_DATABASE_URL": outbound.database_url,
        "OUTBOUND_TEMPORAL_ADDRESS": host,
        "OUTBOUND_TEMPORAL_NAMESPACE": outbound.client.namespace,
        "OUTBOUND_TASK_QUEUE_PREFIX": outbound.prefix,
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(name, value)
    return dlq_app


async def invoke(app: typer.Typer, *args: str) -> Result:
    """The CLI runs its own event loop, so it runs in a thread beside the test's worker."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def execution(outbound: Outbound, execution_id: int) -> StepExecution:
    with outbound.sessions() as session:
        return session.get_one(StepExecution, execution_id)


def letter_status(outbound: Outbound, letter_id: int) -> DeadLetter:
    with outbound.sessions() as session:
        return session.get_one(DeadLetter, letter_id)


async def test_a_retried_letter_of_a_completed_campaign_is_sent_exactly_once(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, letter = await dead_lettered_campaign(outbound)
    assert len(outbound.files("email")) == 1, "the other contact's email"
    provider = CountingProvider(OutboxProvider(outbound.outbox, outbound.faults))
    app = cli(outbound, monkeypatch)
    async with outbound.worker(providers={"outbox": provider}):
        result = await invoke(app, "retry", str(letter.id))
        again = await invoke(app, "retry", str(letter.id))

    assert result.exit_code == 0, result.output
    assert f"execution {letter.execution_id} SENT" in result.output
    assert provider.sends == {letter.execution_id: 1}
    assert [path.stem for path in outbound.files("email")].count(str(letter.execution_id)) == 1
    assert len(outbound.files("email")) == 2
    row = execution(outbound, letter.execution_id)
    assert row.status == "SENT"
    assert row.error is None
    closed = letter_status(outbound, letter.id)
    assert closed.status == "resolved"
    assert closed.resolved_at is not None
    assert again.exit_code != 0
    assert "already retried and is resolved" in str(again.exception)


async def test_a_contact_who_replied_since_is_skipped_not_sent(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, letter = await dead_lettered_campaign(outbound)
    contact = outbound.contact_id("a0@example.com")
    with unit_of_work(outbound.sessions) as session:
        stop_contact(session, contact, SkipReason.REPLIED, datetime.now(UTC))
    app = cli(outbound, monkeypatch)
    async with outbound.worker():
        result = await invoke(app, "retry", str(letter.id))

    assert result.exit_code == 0, result.output
    assert "SKIPPED" in result.output
    assert "replied" in result.output
    row = execution(outbound, letter.execution_id)
    assert (row.status, row.skip_reason) == ("SKIPPED", "replied")
    assert len(outbound.files("email")) == 1, "nothing more was sent"
    assert letter_status(outbound, letter.id).status == "resolved"


async def test_a_retry_that_fails_again_leaves_the_letter_open_and_a_later_retry_can_send_it(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    _, letter = await dead_lettered_campaign(outbound)
    outbound.faults = OutboxFaults(transient_failures=100)
    async with outbound.worker():
        handle = await start_dead_letter_retry(
            workflow_env.client, letter.id, prefix=outbound.prefix, tuning=QUICK_RETRIES
        )
        result: DeadLetterRetryResult = await handle.result()

    assert handle.id == dead_letter_retry_workflow_id(letter.id, outbound.prefix)
    assert result.execution_status.value == "FAILED"
    assert result.letter_status.value == "open"
    reopened = letter_status(outbound, letter.id)
    assert reopened.error_type == "ProviderTransient"
    assert reopened.attempts == execution(outbound, letter.execution_id).attempts
    assert execution(outbound, letter.execution_id).status == "FAILED"
    with outbound.sessions() as session:
        assert len(list(session.scalars(select(DeadLetter)))) == 1, "the same letter, not a second one"

    outbound.faults = OutboxFaults()  # the provider recovered: the operator retries once more
    async with outbound.worker():
        handle = await start_dead_letter_retry(
            workflow_env.client, letter.id, prefix=outbound.prefix, tuning=QUICK_RETRIES
        )
        second: DeadLetterRetryResult = await handle.result()

    assert (second.execution_status.value, second.letter_status.value) == ("SENT", "resolved")
    assert [path.stem for path in outbound.files("email")].count(str(letter.execution_id)) == 1


async def test_a_retry_deferred_by_a_used_up_quota_claims_the_row_again_the_next_day(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    _, letter = await dead_lettered_campaign(outbound)
    today = await email_quota_used_today(outbound, workflow_env, 10_000)  # the mailbox sent its limit today
    async with outbound.worker():
        handle = await start_dead_letter_retry(workflow_env.client, letter.id, prefix=outbound.prefix)
        result: DeadLetterRetryResult = await handle.result()

    assert (result.execution_status.value, result.letter_status.value) == ("SENT", "resolved")
    assert result.rounds >= 3, "deferred, re-claimed when due, sent"
    sent_at = execution(outbound, letter.execution_id).sent_at
    assert sent_at is not None
    assert sent_at.date() > today
    assert len(outbound.files("email")) == 2


async def test_a_discarded_letter_or_a_cancelled_campaigns_letter_is_refused(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, letter = await dead_lettered_campaign(outbound)
    app = cli(outbound, monkeypatch)
    with unit_of_work(outbound.sessions) as session:  # what the workflow's cancel projects
        session.get_one(Campaign, campaign).status = CampaignStatus.CANCELLED.value
    cancelled = await invoke(app, "retry", str(letter.id))
    assert cancelled.exit_code != 0
    assert f"campaign {campaign} was cancelled" in str(cancelled.exception)

    assert (await invoke(app, "discard", str(letter.id))).exit_code == 0
    discarded = await invoke(app, "retry", str(letter.id))
    assert "was discarded" in str(discarded.exception)
    unknown = await invoke(app, "retry", "999999")
    assert "dead letter 999999 does not exist" in str(unknown.exception)
    assert execution(outbound, letter.execution_id).status == "FAILED", "nothing was written"
    assert letter_status(outbound, letter.id).status == "discarded"
