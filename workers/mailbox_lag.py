"""The `outbound_mailbox_sync_lag_seconds` gauge: how far behind each mailbox's inbound sync is.

Measured from the database, not by the sync activity: a sync that has stopped (worker
down, mailbox workflow gone, Gmail failing) sets nothing, so a gauge written only by the
sync would freeze at its last good value exactly when it matters. A worker process that
serves metrics and polls the inbound queue samples every active Gmail mailbox's
`last_synced_at` periodically instead, so the lag keeps growing until a sync succeeds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from db.engine import SessionFactory
from db.models import MailboxSync, Sender
from runtime.metrics import OutboundMetrics
from workers.sampling import SAMPLE_SECONDS, sample_every


class MailboxLagSampler:
    def __init__(self, sessions: SessionFactory, metrics: OutboundMetrics) -> None:
        self.sessions = sessions
        self.metrics = metrics

    def sample(self, now: datetime | None = None) -> int:
        """Set the gauge for every active Gmail mailbox synced at least once; how many."""
        now = now or datetime.now(UTC)
        with self.sessions() as session:
            rows = session.execute(
                select(MailboxSync.sender_id, MailboxSync.last_synced_at)
                .join(Sender, Sender.id == MailboxSync.sender_id)
                .where(Sender.provider == "gmail", Sender.status == "active", MailboxSync.last_synced_at.is_not(None))
            ).all()
        for sender_id, last_synced_at in rows:
            if last_synced_at is not None:  # filtered in SQL; this narrows the type
                self.metrics.mailbox_sync_lag(sender_id, (now - last_synced_at).total_seconds())
        return len(rows)

    async def run(self, interval: float = SAMPLE_SECONDS) -> None:
        """Until cancelled (`workers.sampling.sample_every`)."""
        await sample_every(self.sample, "mailbox sync lag", interval)
