"""Running workers as a process: connect, poll, and shut down gracefully on a signal.

On SIGTERM or SIGINT the process stops polling, lets running activities finish for
`OUTBOUND_GRACEFUL_SHUTDOWN_SECONDS` (Temporal then cancels them), and returns, so the
CLI exits 0. A send cut off by that deadline is safe: its row stays SENDING and the
retry asks the provider before sending again (DESIGN R3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Sequence
from typing import Any

from db.engine import make_engine, make_session_factory
from runtime.job_queues import configured_jobs
from runtime.metrics import OutboundMetrics, metrics_runtime
from runtime.names import inbound_queue
from runtime.settings import Settings
from runtime.telemetry import Tracing
from runtime.temporal import connect
from workers.job_counts import JobCountSampler
from workers.mailbox_lag import MailboxLagSampler
from workers.worker import build_workers, job_threads

log = logging.getLogger("outbound.worker")
# After the graceful timeout the SDK cancels running activities; this is how long the
# cancellations get to land before the process leaves without them.
CANCEL_MARGIN_SECONDS = 5.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_worker(
    settings: Settings, task_queues: Sequence[str] | None = None, *, tracing: Tracing | None = None
) -> None:
    """Poll until SIGINT/SIGTERM, then stop polling and let running activities finish."""
    tracing = tracing or Tracing.from_environment("outbound-worker")
    runtime = metrics_runtime(settings.metrics_address)
    client = await connect(settings, interceptors=tracing.interceptors(), runtime=runtime)
    # One connection per activity thread: a smaller pool made threads queue for connections
    # and its overflow connections were closed on return, so PostgreSQL forked a backend per send.
    jobs = configured_jobs(settings)
    connections = settings.database_connections() + (job_threads(jobs.queues) if jobs else 0)
    engine = make_engine(settings.database_url, pool_size=connections, max_overflow=4)
    sessions = make_session_factory(engine)
    workers = build_workers(client, settings, sessions, task_queues=task_queues, jobs=jobs)
    polled = [w.task_queue for w in workers.workers]
    background: list[asyncio.Task[None]] = []
    if runtime is not None:
        log.info("metrics on http://%s/metrics", settings.metrics_address)
        if inbound_queue(settings.task_queue_prefix) in polled:
            sampler = MailboxLagSampler(sessions, OutboundMetrics(runtime.metric_meter))
            background.append(asyncio.create_task(sampler.run()))
        if jobs is not None:
            counts = JobCountSampler(sessions, OutboundMetrics(runtime.metric_meter), [q.name for q in jobs.queues])
            background.append(asyncio.create_task(counts.run()))
    stopped: asyncio.Future[signal.Signals] = asyncio.get_running_loop().create_future()
    _install_signal_handlers(stopped)
    running = asyncio.create_task(workers.run())
    log.info("worker polling %s", ", ".join(polled))
    try:
        waits: list[asyncio.Future[object]] = [running, stopped]  # type: ignore[list-item]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # a fatal worker error ends the process with it
            return
        await _shut_down(workers.shutdown(), settings.graceful_shutdown_seconds, stopped.result())
        await asyncio.gather(running, return_exceptions=True)
    finally:
        _remove_signal_handlers()
        for task in background:
            task.cancel()
        engine.dispose()
        tracing.shutdown()


async def _shut_down(shutdown: Coroutine[Any, Any, None], grace: float, signum: signal.Signals) -> None:
    log.info("%s: stopped polling; running activities get up to %.0f s to finish", signum.name, grace)
    task = asyncio.ensure_future(shutdown)
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace + CANCEL_MARGIN_SECONDS)
        log.info("worker stopped")
    except TimeoutError:
        log.warning("activities still running %.0f s after the graceful timeout; exiting", CANCEL_MARGIN_SECONDS)


def _install_signal_handlers(stopped: asyncio.Future[signal.Signals]) -> None:
    loop = asyncio.get_running_loop()

    def stop(signum: signal.Signals) -> None:
        if not stopped.done():
            stopped.set_result(signum)

    for signum in SIGNALS:
        loop.add_signal_handler(signum, stop, signum)


def _remove_signal_handlers() -> None:
    """So a second signal during the exit (or after an in-process run) behaves as usual."""
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        with contextlib.suppress(ValueError, RuntimeError):
            loop.remove_signal_handler(signum)
