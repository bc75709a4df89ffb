"""The reference load: no-op activities driven like the step workflow drives sends.

`TrivialWorkflow` keeps `window` activities in flight on a separate task queue and
continues-as-new at the same history threshold as the step workflow, so its rate is
what this Temporal server and one worker process can do when an activity does nothing.
Run as a worker process with `python -m bench.trivial` (settings from `OUTBOUND_*`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

WORKFLOW_QUEUE = "bench-trivial"
ACTIVITY_QUEUE = "bench-noop"


@dataclass(frozen=True)
class TrivialInput:
    total: int
    window: int
    history_threshold: int = 3000
    completed: int = 0


@activity.defn(name="bench_noop")
def noop(index: int) -> int:
    return index


@workflow.defn(name="BenchTrivialWorkflow")
class TrivialWorkflow:
    def __init__(self) -> None:
        self.in_flight = 0
        self.completed = 0

    @workflow.run
    async def run(self, request: TrivialInput) -> int:
        self.completed = started = request.completed
        while started < request.total:
            if self._history_is_long(request):
                await workflow.wait_condition(lambda: self.in_flight == 0)
                workflow.continue_as_new(dataclasses.replace(request, completed=self.completed))
            while self.in_flight < request.window and started < request.total:
                started += 1
                self.in_flight += 1
                handle = workflow.start_activity(
                    noop, started, task_queue=ACTIVITY_QUEUE, start_to_close_timeout=timedelta(seconds=60)
                )
                handle.add_done_callback(self._finished)
            await workflow.wait_condition(lambda: self.in_flight < request.window)
        await workflow.wait_condition(lambda: self.in_flight == 0)
        return self.completed

    def _finished(self, _task: asyncio.Future[int]) -> None:
        self.in_flight -= 1
        self.completed += 1

    @staticmethod
    def _history_is_long(request: TrivialInput) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= request.history_threshold or info.is_continue_as_new_suggested()


async def run_worker() -> None:
    """Poll both queues with the production worker's limits until SIGTERM/SIGINT."""
    from runtime.settings import Settings
    from runtime.temporal import DATA_CONVERTER

    settings = Settings()
    client = await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
    )
    executor = ThreadPoolExecutor(max_workers=settings.max_concurrent_activities + 8)
    limit = settings.max_concurrent_activities
    workers = [
        Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[TrivialWorkflow], max_concurrent_activities=limit),
        Worker(
            client,
            task_queue=ACTIVITY_QUEUE,
            activities=[noop],
            activity_executor=executor,
            max_concurrent_activities=limit,
        ),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.gather(*(worker.run() for worker in workers))
    await stop.wait()
    await asyncio.gather(*(worker.shutdown() for worker in workers))
    await asyncio.gather(running, return_exceptions=True)
    executor.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    asyncio.run(run_worker())
