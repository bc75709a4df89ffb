"""A feature service on a real port (the example one) and a deployment with job queues."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
import yaml
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from examples.feature_service import create_app
from runtime.job_queues import queue_secret
from runtime.names import webhook_workflow_id
from tests.e2e_support import free_port
from tests.support import Outbound

T = TypeVar("T")


@dataclass
class FeatureService:
    url: str
    app: Any

    @property
    def done(self) -> dict[str, Any]:
        return dict(self.app.state.done)

    @property
    def attempts(self) -> dict[str, int]:
        return dict(self.app.state.attempts)

    @property
    def requests(self) -> dict[str, int]:
        return dict(self.app.state.requests)


@contextmanager
def feature_service(secret: str) -> Iterator[FeatureService]:
    """examples/feature_service.py served by uvicorn in a thread, on a free port."""
    app = create_app(secret)
    with serving(app) as base:
        yield FeatureService(base, app)


def write_jobs_file(folder: Path, endpoint: str, **queue: Any) -> Path:
    spec = {"name": "enrich", "handler": "http", "endpoint": endpoint, "slots": 4, "attempts": 3, "timeout": "10s"}
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump({"queues": [spec | queue]}))
    return path


def with_jobs(outbound: Outbound, jobs_file: Path) -> str:
    """Give the deployment its job queues; the queue's secret, for the service."""
    outbound.overrides = {**outbound.overrides, "jobs_file": jobs_file}
    return queue_secret(outbound.settings, "enrich")


async def closed_result(handle: WorkflowHandle[Any, T], *, timeout: float) -> T:
    """A long workflow's result, once its last run has closed. The time-skipping server
    can end `result()`'s long poll with an empty page while a walk that continues as new
    is still running; waiting for the close first avoids that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{handle.id} still running after {timeout:g} s")
        await asyncio.sleep(0.5)
    return await handle.result()


@dataclass
class Receiver:
    url: str
    app: Any

    @property
    def received(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.app.state.received)

    def trust(self, *secrets: str) -> None:
        """Verify with these secrets (any one of them) from now on."""
        from standardwebhooks import Webhook

        self.app.state.verifiers = [Webhook(secret) for secret in secrets]

    def answer_first(self, *statuses: int, retry_after: int | None = None) -> None:
        self.app.state.answers.extend(statuses)
        self.app.state.retry_after = retry_after


@contextmanager
def webhook_receiver(*secrets: str) -> Iterator[Receiver]:
    """examples/webhook_receiver.py served by uvicorn in a thread, on a free port."""
    from examples.webhook_receiver import create_app as receiver_app

    app = receiver_app(*secrets)
    with serving(app) as base:
        yield Receiver(f"{base}/webhooks", app)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


async def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def jobs_closed(outbound: Outbound, timeout: float = 30) -> None:
    """Until every job workflow of the deployment has closed. One still running when its
    worker stops leaves its next task on a queue nobody polls, and the shared time-skipping
    server stops skipping time for every later test."""
    from sqlalchemy import select

    from db.models import Job
    from starter.job_producer import job_runs_closed

    with outbound.sessions() as session:
        jobs = [(queue, key) for queue, key in session.execute(select(Job.queue, Job.job_key))]
    await job_runs_closed(outbound.client, jobs, outbound.prefix, timeout)


@asynccontextmanager
async def delivering(outbound: Outbound) -> AsyncIterator[None]:
    """A worker for the test, and the endpoints' delivery workflows ended before it stops
    (disabled, woken, finished). Left running, their next task would wait on a queue nobody
    polls, and the shared time-skipping server would stop skipping time for later tests."""
    from datetime import UTC, datetime

    from db.engine import unit_of_work
    from db.webhooks import disable, endpoints

    async with outbound.worker():
        try:
            yield
        finally:
            with unit_of_work(outbound.sessions) as session:
                ids = [row.id for row in endpoints(session)]
                for endpoint_id in ids:
                    disable(session, endpoint_id, "the test is over", datetime.now(UTC))
            for endpoint_id in ids:
                handle = outbound.client.get_workflow_handle(webhook_workflow_id(endpoint_id, outbound.prefix))
                with contextlib.suppress(RPCError):
                    await handle.signal("wake")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(handle.result(), timeout=30)
