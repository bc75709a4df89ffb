"""Running workers as a process: connect, poll, and shut down gracefully on a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from db.engine import make_engine, make_session_factory
from runtime.settings import Settings
from runtime.temporal import connect
from workers.worker import build_workers

log = logging.getLogger("outbound.worker")


async def run_worker(settings: Settings, task_queues: Sequence[str] | None = None) -> None:
    """Poll until SIGINT/SIGTERM, then stop polling and let running activities finish."""
    client = await connect(settings)
    # One connection per activity thread: a smaller pool made threads queue for connections
    # and its overflow connections were closed on return, so PostgreSQL forked a backend per send.
    threads = settings.max_concurrent_activities + 8
    engine = make_engine(settings.database_url, pool_size=threads, max_overflow=4)
    workers = build_workers(client, settings, make_session_factory(engine), task_queues=task_queues)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(workers.run())
    log.info("worker polling %s", ", ".join(w.task_queue for w in workers.workers))
    await asyncio.wait([running, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        log.info("shutting down: waiting for running activities")
        await workers.shutdown()
    await asyncio.gather(running, return_exceptions=True)
    engine.dispose()
