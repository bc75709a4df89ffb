"""`outbound demo --jobs`: the job platform end to end on the embedded defaults.

Starts a Temporal dev server (unless one answers), the example feature service
(`examples/feature_service.py`) and a worker for its queue, then adds four jobs — one
that completes, one the service is too busy for twice (retried with backoff), one it
refuses (failed, dead-lettered) — and a bulk job of twenty items, and shows them until
they are done. Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import uvicorn
import yaml
from rich.console import Console
from rich.table import Table

from db.engine import make_engine, make_session_factory
from db.jobs import list_jobs, view
from db.migrate import upgrade
from domain.jobs_yaml import load_jobs_file
from examples.feature_service import create_app
from runtime.job_queues import queue_secret
from runtime.names import job_queue
from runtime.search_attributes import register_search_attributes
from runtime.settings import Settings
from runtime.temporal import connect
from starter.devserver import free_port, port_open, start_dev_server, stop
from starter.job_producer import JobProducer
from workers.worker import build_workers

QUEUE = "enrich"


async def run_jobs_demo(settings: Settings, console: Console, *, home: Path, ui_port: int | None = None) -> int:
    host, _, port = settings.temporal_address.rpartition(":")
    ui_port = ui_port or int(port) + 1000
    server = None
    if not port_open(host or "127.0.0.1", int(port)):
        console.print(f"Starting the Temporal dev server on {settings.temporal_address} (Web UI on :{ui_port}) ...")
        server = start_dev_server(home, port=int(port), ui_port=ui_port, namespace=settings.temporal_namespace)
    service = _FeatureService(queue_secret(settings, QUEUE))
    try:
        service.start()
        console.print(f"Example feature service on {service.url} (examples/feature_service.py)")
        return await _demo(settings, console, home, service.url, ui_port)
    finally:
        service.stop()
        if server is not None:
            stop(server)


async def _demo(settings: Settings, console: Console, home: Path, endpoint: str, ui_port: int) -> int:
    jobs_file = home / "demo-jobs.yaml"
    queue = {"name": QUEUE, "handler": "http", "endpoint": endpoint, "slots": 8, "attempts": 3, "timeout": "10s"}
    jobs_file.write_text(yaml.safe_dump({"queues": [queue]}))
    settings = settings.model_copy(update={"jobs_file": jobs_file})
    jobs = load_jobs_file(jobs_file)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    client = await connect(settings)
    await register_search_attributes(client, settings.temporal_namespace)
    prefix = settings.task_queue_prefix
    workers = build_workers(client, settings, sessions, task_queues=[job_queue(QUEUE, prefix)], jobs=jobs)
    running = asyncio.create_task(workers.run())
    try:
        producer = JobProducer(client, sessions, jobs, prefix)
        run = f"{time.time():.0f}"
        added = [
            await producer.add(QUEUE, {"domain": "acme.example"}, name="company", job_key=f"acme-{run}"),
            await producer.add(
                QUEUE, {"domain": "busy.example", "fail_times": 2}, name="company", job_key=f"busy-{run}"
            ),
            await producer.add(QUEUE, {"domain": "nope", "refuse": True}, name="company", job_key=f"refused-{run}"),
        ]
        items = [{"domain": f"lead{n}.example"} for n in range(1, 21)]
        bulk = await producer.add_bulk(QUEUE, items, name="refresh", job_key=f"bulk-{run}")
        keys = [enqueued.job.job_key for enqueued in [*added, bulk]]
        console.print(f"Added {len(keys)} jobs to queue {QUEUE!r}: " + ", ".join(keys))
        while True:
            with sessions() as session:
                shown = [view(job) for job in list_jobs(session, QUEUE, limit=200) if job.job_key in keys]
            if all(job.status.finished for job in shown) and len(shown) == len(keys):
                break
            await asyncio.sleep(0.5)
        table = Table("Job", "Status", "Attempts", "Result / error")
        for job in sorted(shown, key=lambda job: job.id):
            detail = str(job.result if job.result is not None else job.error or "")
            table.add_row(job.job_key, job.status.value, f"{job.attempts_made}/{job.attempts_allowed}", detail[:70])
        console.print(table)
        counts = {status: sum(job.status.value == status for job in shown) for status in ("completed", "failed")}
        console.print(f"Jobs finished: {counts['completed']} completed, {counts['failed']} failed (a dead letter)")
        web_ui = f"http://localhost:{ui_port}/namespaces/{settings.temporal_namespace}/workflows"
        console.print(f'Web UI: {web_ui}?query=JobQueue%3D"{QUEUE}"')
        console.print("Try: outbound jobs list, outbound dlq list (with OUTBOUND_JOBS_FILE=" + str(jobs_file) + ")")
        return 0 if counts == {"completed": 3, "failed": 1} else 1
    finally:
        await workers.shutdown()
        await asyncio.gather(running, return_exceptions=True)
        engine.dispose()


class _FeatureService:
    """examples/feature_service.py on a free local port, in a thread of this process."""

    def __init__(self, secret: str) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(secret), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the example feature service did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
