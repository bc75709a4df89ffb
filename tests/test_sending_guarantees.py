"""Exactly once, quotas, retries and the dead letter, on the time-skipping test server."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from db.models import DeadLetter, Sender, StepExecution
from providers.outbox import OutboxProvider
from runtime.settings import OutboxFaults
from schemas.enums import CampaignStatus
from schemas.workflow_io import Tuning
from tests.support import (
    EMAIL_STEP,
    CountingProvider,
    Outbound,
    campaign_spec,
    email_quota_used_today,
    people,
    save_history,
    seed,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=[1, 20], ids=["one-per-activity", "batches-of-20"])
def send_batch_size(request: pytest.FixtureRequest) -> int:
    """Every guarantee holds whether a message has its own activity or shares a batch."""
    return int(request.param)


QUICK_RETRIES = Tuning(retry_maximum_attempts=3, retry_initial_seconds=1, retry_max_interval_seconds=2)


def sent_rows(outbound: Outbound) -> list[StepExecution]:
    with outbound.sessions() as session:
        return list(session.scalars(select(StepExecution).where(StepExecution.status == "SENT")))


async def test_a_send_retried_after_the_message_went_out_is_not_sent_again(outbound: Outbound) -> None:
    outbound.faults = OutboxFaults(crash_after_write=True)
    provider = CountingProvider(OutboxProvider(outbound.outbox, outbound.faults))
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 6)})
    async with outbound.worker(providers={"outbox": provider}):
        await (await outbound.launch(campaign)).result()

    assert outbound.counts(campaign) == {(1, "SENT"): 6}
    assert sorted(provider.sends.values()) == [1] * 6, "each message reached the provider exactly once"
    with outbound.sessions() as session:
        used = session.scalar(select(func.sum(Sender.sends_today)).where(Sender.channel == "email"))
    assert used == 6, "the retry did not claim quota again"
    assert all(row.attempts == 2 for row in sent_rows(outbound)), "each row counts the attempt and its retry"


async def test_transient_provider_errors_are_retried_until_the_send_succeeds(outbound: Outbound) -> None:
    outbound.faults = OutboxFaults(transient_failures=2)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 3)})
    async with outbound.worker():
        await (await outbound.launch(campaign)).result()
    assert outbound.counts(campaign) == {(1, "SENT"): 3}
    assert len(outbound.files("email")) == 3


async def test_exhausted_retries_end_in_the_dead_letter_and_the_campaign_completes(outbound: Outbound) -> None:
    outbound.faults = OutboxFaults(transient_failures=100)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 2)})
    async with outbound.worker():
        handle = await outbound.launch(campaign, tuning=QUICK_RETRIES)
        progress = await handle.result()
        await save_history(handle, "dead_letter")

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert outbound.counts(campaign) == {(1, "FAILED"): 2}
    with outbound.sessions() as session:
        letters = list(session.scalars(select(DeadLetter)))
    assert len(letters) == 2
    assert {letter.error_type for letter in letters} == {"ProviderTransient"}
    assert {(letter.attempts, letter.retry_state) for letter in letters} == {(3, "MAXIMUM_ATTEMPTS_REACHED")}
    assert all("@" not in letter.error for letter in letters), "no contact data in errors"


async def test_a_permanent_error_fails_one_contact_without_retrying_and_others_are_sent(outbound: Outbound) -> None:
    outbound.faults = OutboxFaults(permanent_failure_marker="a1@")
    provider = CountingProvider(OutboxProvider(outbound.outbox, outbound.faults))
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 3)})
    async with outbound.worker(providers={"outbox": provider}):
        await (await outbound.launch(campaign)).result()

    assert outbound.counts(campaign) == {(1, "SENT"): 2, (1, "FAILED"): 1}
    assert sorted(provider.sends.values()) == [1, 1, 1]
    with outbound.sessions() as session:
        (letter,) = session.scalars(select(DeadLetter))
    assert (letter.attempts, letter.retry_state) == (1, "NON_RETRYABLE_FAILURE"), "one attempt, not RetryState's number"


async def test_a_used_up_daily_quota_defers_sends_to_the_senders_next_day(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 5)}, daily_limit=10)
    today = await email_quota_used_today(outbound, workflow_env, 7)  # another campaign already used 7 of 10
    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await handle.result()
        await save_history(handle, "quota_deferral")

    rows = sent_rows(outbound)
    assert len(rows) == 5
    days = sorted(row.sent_at.date() for row in rows if row.sent_at)
    assert days.count(today) == 3, "only the 3 sends left today went out today"
    assert all(day > today for day in days[3:])


async def test_two_workers_never_exceed_a_senders_daily_limit(
    outbound: Outbound, workflow_env: WorkflowEnvironment
) -> None:
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 24)}, daily_limit=30)
    today = await email_quota_used_today(outbound, workflow_env, 20)
    async with outbound.worker(), outbound.second_client() as other, other.worker():
        await (await outbound.launch(campaign)).result()

    rows = sent_rows(outbound)
    assert len(rows) == 24
    assert sum(1 for row in rows if row.sent_at and row.sent_at.date() == today) == 10
    with outbound.sessions() as session:
        assert session.scalar(select(func.max(Sender.sends_today)).where(Sender.channel == "email")) <= 30
