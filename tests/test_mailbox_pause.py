"""Repeated rate limits or provider 5xx pause the mailbox instead of a retry storm (R12).

The count is kept per sender in the database, on SQLite and PostgreSQL; the campaign on
the time-skipping server shows what a pause does to the sends: nothing reaches the
provider while it lasts, waiting sends go out when it ends, nothing is lost or doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import unit_of_work
from db.mailboxes import note_throttling
from db.models import DeadLetter, Sender, StepExecution
from providers.base import FailureKind, ProviderError
from providers.outbox import OutboxProvider
from runtime.settings import MailboxPauseSettings
from schemas.enums import Channel
from schemas.workflow_io import Tuning
from tests.conftest import Database
from tests.support import EITHER_BATCH_SIZE, EMAIL_STEP, CountingProvider, Outbound, campaign_spec, people, seed

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
POLICY = MailboxPauseSettings(after_failures=3, within_seconds=60, pause_seconds=600)


def a_sender(db: Database) -> int:
    seed(db.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 1)})
    with db.sessions() as session:
        return session.scalars(select(Sender.id).where(Sender.channel == Channel.EMAIL.value)).one()


def throttled(db: Database, sender_id: int, at: datetime) -> tuple[datetime | None, bool]:
    with unit_of_work(db.sessions) as session:
        return tuple(note_throttling(session, sender_id, at, POLICY))  # type: ignore[return-value]


def test_the_failure_that_completes_the_count_within_the_window_pauses_the_mailbox(db: Database) -> None:
    sender = a_sender(db)
    assert throttled(db, sender, NOW) == (None, False)
    assert throttled(db, sender, NOW + timedelta(seconds=20)) == (None, False)
    paused_at = NOW + timedelta(seconds=40)
    assert throttled(db, sender, paused_at) == (paused_at + timedelta(seconds=600), True)
    assert throttled(db, sender, paused_at + timedelta(seconds=1)) == (paused_at + timedelta(seconds=600), False)
    with db.sessions() as session:
        assert session.get_one(Sender, sender).paused_until == paused_at + timedelta(seconds=600)


def test_failures_spread_wider_than_the_window_never_pause_it(db: Database) -> None:
    sender = a_sender(db)
    for minute in range(6):
        assert throttled(db, sender, NOW + timedelta(seconds=45 * minute)) == (None, False)


def test_after_a_pause_the_count_starts_again(db: Database) -> None:
    sender = a_sender(db)
    for second in range(3):
        throttled(db, sender, NOW + timedelta(seconds=second))
    after = NOW + timedelta(seconds=2 + 600 + 1)
    assert throttled(db, sender, after) == (None, False), "one failure after the pause is one, not four"


class RateLimitedMailbox(CountingProvider):
    """The outbox behind a provider that answers 429 to its first `failures` sends."""

    def __init__(self, inner: OutboxProvider, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures
        self.calls = 0

    def send(self, message: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ProviderError(FailureKind.THROTTLED, "429 rateLimitExceeded", "rateLimitExceeded")
        return super().send(message)


@pytest.mark.timeout(180)
@EITHER_BATCH_SIZE
async def test_a_rate_limited_mailbox_pauses_and_its_sends_go_out_once_when_the_pause_ends(
    outbound: Outbound,
) -> None:
    outbound.overrides = {"mailbox_pause": POLICY}
    provider = RateLimitedMailbox(OutboxProvider(outbound.outbox, outbound.faults), failures=3)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 8)})
    tuning = Tuning(send_window=2, retry_maximum_attempts=5, retry_initial_seconds=1, retry_max_interval_seconds=2)
    async with outbound.worker(providers={"outbox": provider}):
        await (await outbound.launch(campaign, tuning=tuning)).result()

    assert outbound.counts(campaign) == {(1, "SENT"): 8}
    assert sorted(provider.sends.values()) == [1] * 8, "after the 429s, each message reached the provider once"
    with outbound.sessions() as session:
        paused_until = session.scalars(select(Sender.paused_until).where(Sender.channel == "email")).one()
        sent = sorted(at for at in session.scalars(select(StepExecution.sent_at)) if at is not None)
        assert session.scalars(select(DeadLetter)).all() == []
    assert paused_until is not None
    paused_at = paused_until - timedelta(seconds=POLICY.pause_seconds)
    # A send already past its pause check when the pause began may still finish then.
    during = [at for at in sent if paused_at + timedelta(seconds=5) < at < paused_until]
    assert during == [], "nothing went out during the pause"
    assert sum(1 for at in sent if at >= paused_until) >= 6, "the sends that were waiting went out after it"
