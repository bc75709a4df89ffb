"""The `outbound_jobs{queue, status}` gauges: jobs per queue and state, sampled from the
database (one grouped query), so a dashboard shows waiting, active and failed jobs the way
BullMQ's `getJobCounts` does."""

from __future__ import annotations

import asyncio
import logging

from db.engine import SessionFactory
from db.jobs import queue_counts
from runtime.metrics import OutboundMetrics
from schemas.jobs import JobStatus

log = logging.getLogger("outbound.worker")
SAMPLE_SECONDS = 15.0


class JobCountSampler:
    def __init__(self, sessions: SessionFactory, metrics: OutboundMetrics, queues: list[str]) -> None:
        self.sessions = sessions
        self.metrics = metrics
        self.queues = queues

    def sample(self) -> None:
        with self.sessions() as session:
            counts = queue_counts(session)
        for queue in self.queues:
            for status in JobStatus:
                self.metrics.jobs_in_state(queue, status.value, counts.get(queue, {}).get(status.value, 0))

    async def run(self, interval: float = SAMPLE_SECONDS) -> None:
        """Until cancelled; a failed sample (database briefly down) is logged and retried."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.sample)
            except Exception as error:
                log.warning("job count sample failed: %s", type(error).__name__)
            await asyncio.sleep(interval)
