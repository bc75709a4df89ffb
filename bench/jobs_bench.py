"""Jobs against their references, in one run on one dev server (issue #17's targets).

- single jobs per second through the `http` handler to the example feature service (a
  separate process, answering at once) vs one-activity workflows per second;
- bulk items per second vs no-op activities per second (the same window);
- enqueue latency p50/p95 through `POST /v1/jobs`;
- the longest history of the bulk job's runs;
- the worker's peak RSS during a bulk job of 100,000 items vs one of 10,000.

Each reference is measured before and after what it is compared with, and the mean is
used (the machine's pace drifts; decision 0020).

    uv run python -m bench.jobs_bench --jobs 1000 --items 10000 --large-items 100000

The worker runs in this process with the production wiring (`build_workers`); the
references run on the same client and worker settings. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from bench.database import DEFAULT_ADMIN_URL
from bench.in_process import dev_server_and_database, longest_history, run_and_keep, wait_for_http
from bench.processes import RssSampler, free_port
from bench.trivial import ACTIVITY_QUEUE, WORKFLOW_QUEUE, TrivialInput, TrivialWorkflow, noop
from db.api_keys import create_key
from db.engine import unit_of_work
from db.jobs import queue_counts
from domain.jobs_yaml import load_jobs_file
from runtime.job_queues import queue_secret
from runtime.names import job_workflow_id
from runtime.secrets import new_secret_key
from runtime.settings import Settings
from starter.job_producer import JobProducer
from workers.api import ApiDependencies, create_app
from workers.worker import build_workers

console = Console()
ONE_ACTIVITY_QUEUE = "bench-one-activity"


@workflow.defn(name="BenchOneActivityWorkflow", sandboxed=False)  # the bench module imports the world
class OneActivityWorkflow:
    """The reference for single jobs: a workflow that runs one no-op activity."""

    @workflow.run
    async def run(self, index: int) -> int:
        return await workflow.execute_activity(
            noop, index, task_queue=ACTIVITY_QUEUE, start_to_close_timeout=timedelta(seconds=60)
        )


def say(message: str) -> None:
    console.print(f"[dim]{datetime.now():%H:%M:%S}[/] {message}", highlight=False)


async def bounded(calls: Sequence[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))


async def measure(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> dict[str, Any]:
    deployment = await dev_server_and_database(
        scratch, stack, admin_url=args.admin_url, name="jobs", pool_size=64, say=say
    )
    client, url, sessions = deployment.client, deployment.database_url, deployment.sessions
    key = new_secret_key()
    base = Settings(database_url=url, secret_key=SecretStr(key), task_queue_prefix=f"b{uuid.uuid4().hex[:6]}-")
    secret = queue_secret(base, "bench")

    service_port = free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.feature_service:from_environment", "--factory",
         "--port", str(service_port), "--log-level", "warning"],
        env={**os.environ, "FEATURE_SERVICE_SECRET": secret},
    )  # fmt: skip
    stack.callback(service.terminate)
    jobs_path = scratch / "jobs.yaml"
    queue = {"name": "bench", "handler": "http", "endpoint": f"http://127.0.0.1:{service_port}"}
    queue |= {"slots": args.slots, "attempts": 3, "timeout": "30s"}
    jobs_path.write_text(yaml.safe_dump({"queues": [queue]}))
    settings = base.model_copy(update={"jobs_file": jobs_path, "max_concurrent_activities": args.slots})
    jobs = load_jobs_file(jobs_path)
    await wait_for_http(f"http://127.0.0.1:{service_port}/internal/process-job")

    executor = ThreadPoolExecutor(max_workers=args.slots + 8)
    stack.callback(executor.shutdown, wait=False, cancel_futures=True)
    reference_workers = [
        Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[TrivialWorkflow]),
        Worker(client, task_queue=ONE_ACTIVITY_QUEUE, workflows=[OneActivityWorkflow]),
        Worker(client, task_queue=ACTIVITY_QUEUE, activities=[noop], activity_executor=executor,
               max_concurrent_activities=args.slots),
    ]  # fmt: skip
    job_workers = build_workers(
        client, settings, sessions, task_queues=[f"{settings.task_queue_prefix}jobs-bench"], jobs=jobs
    )
    running = [asyncio.create_task(w.run()) for w in reference_workers] + [asyncio.create_task(job_workers.run())]
    figures: dict[str, Any] = {}
    try:
        producer = JobProducer(client, sessions, jobs, settings.task_queue_prefix)

        async def one_activity_workflows() -> float:
            say(f"reference: {args.jobs:,} one-activity workflows")
            started = time.perf_counter()
            calls = [
                (lambda i=i: client.execute_workflow(OneActivityWorkflow.run, i, id=f"bench-one-{uuid.uuid4().hex}",
                                                     task_queue=ONE_ACTIVITY_QUEUE))
                for i in range(args.jobs)
            ]  # fmt: skip
            await bounded(calls, args.concurrency)
            return args.jobs / (time.perf_counter() - started)

        async def noop_activities() -> float:
            say(f"reference: {args.items:,} no-op activities, window {args.window}")
            started = time.perf_counter()
            await client.execute_workflow(
                TrivialWorkflow.run,
                TrivialInput(total=args.items, window=args.window),
                id=f"bench-trivial-{uuid.uuid4().hex}",
                task_queue=WORKFLOW_QUEUE,
            )
            return args.items / (time.perf_counter() - started)

        async def bulk_job(key: str, count: int) -> tuple[float, int]:
            """Items per second, and this process's peak RSS (KiB) while the job ran."""
            say(f"a bulk job of {count:,} items, window {args.window}, batch {args.batch}")
            items = ({"n": n} for n in range(count))
            peak = RssSampler(os.getpid(), interval=0.5, children=False)  # the worker, not its peers
            peak.start()
            started = time.perf_counter()
            bulk = await producer.add_bulk("bench", items, job_key=key, window=args.window, batch=args.batch)
            await producer.bulk_handle(bulk.job).result()
            rate = count / (time.perf_counter() - started)
            peak.stop()
            return rate, peak.peak // 1024

        before = await one_activity_workflows()
        say(f"{args.jobs:,} single jobs through the http handler")
        started = time.perf_counter()
        adds = [(lambda i=i: producer.add("bench", {"n": i}, job_key=f"single-{i}")) for i in range(args.jobs)]
        added = await bounded(adds, args.concurrency)
        await bounded([(lambda e=e: producer.handle(e.job).result()) for e in added], args.concurrency)
        figures["single_jobs_per_s"] = args.jobs / (time.perf_counter() - started)
        after = await one_activity_workflows()
        figures["one_activity_workflows_per_s"] = (before + after) / 2
        figures["one_activity_before_after"] = [before, after]

        before = await noop_activities()
        figures["bulk_items_per_s"], figures["rss_kib_small"] = await bulk_job("bulk-1", args.items)
        after = await noop_activities()
        figures["noop_activities_per_s"] = (before + after) / 2
        figures["noop_before_after"] = [before, after]
        figures["longest_bulk_history"] = await longest_history(
            client, job_workflow_id("bench", "bulk-1", settings.task_queue_prefix)
        )
        if args.large_items:
            figures["large_items_per_s"], figures["rss_kib_large"] = await bulk_job("bulk-large", args.large_items)
            figures["longest_bulk_history"] = max(
                figures["longest_bulk_history"],
                await longest_history(client, job_workflow_id("bench", "bulk-large", settings.task_queue_prefix)),
            )

        say(f"enqueue latency through POST /v1/jobs ({args.api_requests} requests)")
        with unit_of_work(sessions) as session:
            api_key = create_key(session, "bench", datetime.now(UTC))

        async def temporal() -> Client:
            return client

        app = create_app(ApiDependencies(settings, sessions, temporal))
        latencies = []
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as api:
            for i in range(args.api_requests):
                began = time.perf_counter()
                response = await api.post("/v1/jobs", json={"queue": "bench", "data": {"n": i}, "jobId": f"api-{i}"})
                latencies.append(time.perf_counter() - began)
                response.raise_for_status()
        cuts = statistics.quantiles(latencies, n=20)
        figures["enqueue_p50_ms"] = statistics.median(latencies) * 1000
        figures["enqueue_p95_ms"] = cuts[18] * 1000
        with sessions() as session:
            figures["counts"] = queue_counts(session).get("bench", {})
    finally:
        await job_workers.shutdown()
        for worker in reference_workers:
            await worker.shutdown()
        await asyncio.gather(*running, return_exceptions=True)
    if args.large_items:
        figures["rss_ratio"] = figures["rss_kib_large"] / figures["rss_kib_small"]
    figures["single_ratio"] = figures["single_jobs_per_s"] / figures["one_activity_workflows_per_s"]
    figures["bulk_ratio"] = figures["bulk_items_per_s"] / figures["noop_activities_per_s"]
    return figures


def show(figures: dict[str, Any]) -> None:
    table = Table("figure", "measured", "target")
    table.add_row("one-activity workflows/s (reference)", f"{figures['one_activity_workflows_per_s']:.1f}", "")
    table.add_row("single jobs/s (http handler)", f"{figures['single_jobs_per_s']:.1f}", "")
    table.add_row("single jobs ÷ reference", f"{figures['single_ratio']:.2f}", "≥ 0.70")
    table.add_row("no-op activities/s (reference)", f"{figures['noop_activities_per_s']:.1f}", "")
    table.add_row("bulk items/s", f"{figures['bulk_items_per_s']:.1f}", "")
    table.add_row("bulk items ÷ reference", f"{figures['bulk_ratio']:.2f}", "≥ 0.60")
    table.add_row(
        "enqueue p50 / p95 (POST /v1/jobs)", f"{figures['enqueue_p50_ms']:.1f} / {figures['enqueue_p95_ms']:.1f} ms", ""
    )
    table.add_row("longest history of the bulk jobs' runs", f"{figures['longest_bulk_history']:,}", "≤ 5,000")
    if "rss_ratio" in figures:
        table.add_row("bulk items/s, the large job", f"{figures['large_items_per_s']:.1f}", "")
        table.add_row(
            "worker RSS peak, large ÷ small job",
            f"{figures['rss_kib_large'] / 1024:.0f} / {figures['rss_kib_small'] / 1024:.0f} MiB"
            f" = {figures['rss_ratio']:.2f}",
            "≤ 1.25",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="Single jobs (and one-activity workflows).")
    parser.add_argument("--items", type=int, default=10_000, help="Items of the bulk job (and no-op activities).")
    parser.add_argument("--large-items", type=int, default=100_000, help="A second bulk job for RSS (0: none).")
    parser.add_argument("--window", type=int, default=100, help="Items in flight (and no-op activities).")
    parser.add_argument("--batch", type=int, default=10, help="Items per activity of the bulk job.")
    parser.add_argument("--slots", type=int, default=24, help="Activity slots of the job queue and the reference.")
    parser.add_argument("--concurrency", type=int, default=100, help="Jobs enqueued and awaited at once.")
    parser.add_argument("--api-requests", type=int, default=200, help="POST /v1/jobs calls for the latency.")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="Where the PostgreSQL database is made.")
    return run_and_keep("jobs", parser.parse_args(argv), measure, show, console)


if __name__ == "__main__":
    raise SystemExit(main())
