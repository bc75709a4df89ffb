"""The `outbound_jobs{queue, status}` gauges: jobs per queue and state, sampled from the
database (one grouped query), so a dashboard shows waiting, active and failed jobs the way
BullMQ's `getJobCounts` does."""

from __future__ import annotations

from db.engine import SessionFactory
from db.jobs import queue_counts
from runtime.metrics import OutboundMetrics
from workers.sampling import SAMPLE_SECONDS, sample_every


class JobCountSampler:
    def __init__(self, sessions: SessionFactory, metrics: OutboundMetrics, queues: list[str]) -> None:
        self.sessions = sessions
        self.metrics = metrics
        self.queues = queues

    def sample(self) -> None:
        with self.sessions() as session:
            counts = queue_counts(session, self.queues)
        for queue in self.queues:
            for status, count in counts[queue].items():
                self.metrics.jobs_in_state(queue, status, count)

    async def run(self, interval: float = SAMPLE_SECONDS) -> None:
        """Until cancelled (`workers.sampling.sample_every`)."""
        await sample_every(self.sample, "job count", interval)
