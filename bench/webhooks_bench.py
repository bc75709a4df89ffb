"""Webhook delivery against its reference, in one run on one dev server (issue #18's targets).

- events per second delivered to a local receiver (a separate process, verifying every
  signature and answering at once) for a backlog of `--events` events, vs no-op activities
  per second on the same server (measured before and after, the mean used);
- lag from an event's commit to its delivery, p50 / p95, for events written at a steady
  `--rate` per second (a healthy receiver, no backlog);
- the delivery workflow's longest history, and the worker's RSS peak during the backlog;
- the campaign send rate of `bench/campaign_bench.py` (`--campaign-contacts`, an `outbound
  worker` process, on the same server in the same run): delivery keeps up when events
  delivered per second are at least the sends per second.

    uv run python -m bench.webhooks_bench --events 50000 --rate 100 --campaign-contacts 10000

The worker runs in this process with the production wiring (`build_workers`, the
`webhooks` task queue only). Figures go to docs/benchmarks.md.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select
from temporalio.client import Client
from temporalio.worker import Worker

from bench import campaign_bench
from bench.database import DEFAULT_ADMIN_URL
from bench.in_process import dev_server_and_database, longest_history, run_and_keep, wait_for_http
from bench.processes import RssSampler, free_port, snapshot_code
from bench.trivial import ACTIVITY_QUEUE, WORKFLOW_QUEUE, TrivialInput, TrivialWorkflow, noop
from db.engine import unit_of_work
from db.events import EVENTS, event_values
from db.models import WebhookDelivery
from runtime.names import webhook_queue, webhook_workflow_id
from runtime.secrets import new_secret_key
from runtime.settings import Settings, WebhookSettings
from schemas.events import CampaignData, EventType
from starter.webhook_admin import WebhookAdmin
from workers.worker import build_workers

console = Console()


def say(message: str) -> None:
    console.print(f"[dim]{datetime.now():%H:%M:%S}[/] {message}", highlight=False)


def write_events(sessions: Any, count: int, now: datetime, chunk: int = 5000) -> None:
    data = CampaignData(campaign_id=1, name="bench", status="PAUSED", at=now)
    row = event_values(EventType.CAMPAIGN_PAUSED, data, now)
    for start in range(0, count, chunk):
        with unit_of_work(sessions) as session:
            session.execute(insert(EVENTS), [row] * min(chunk, count - start))


def delivered(sessions: Any) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "delivered")
            )
            or 0
        )


async def until_delivered(sessions: Any, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while delivered(sessions) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {delivered(sessions)} of {count} delivered after {timeout:g} s")
        await asyncio.sleep(0.2)


async def measure(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> dict[str, Any]:
    deployment = await dev_server_and_database(
        scratch, stack, admin_url=args.admin_url, name="webhooks", pool_size=32, say=say
    )
    client, url, sessions = deployment.client, deployment.database_url, deployment.sessions
    prefix = f"b{uuid.uuid4().hex[:6]}-"
    hooks = WebhookSettings(allow_private=True, batch=args.batch)
    settings = Settings(
        database_url=url, secret_key=SecretStr(new_secret_key()), task_queue_prefix=prefix, webhooks=hooks
    )

    receiver_port = free_port()
    admin = WebhookAdmin(client, sessions, settings)
    # The endpoint first (its secret is the receiver's), its workflow started once the worker runs.
    endpoint, secret = await WebhookAdmin(None, sessions, settings).add(
        f"http://127.0.0.1:{receiver_port}/webhooks", ["campaign.paused"]
    )
    receiver = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.webhook_receiver:from_environment", "--factory",
         "--port", str(receiver_port), "--log-level", "warning"],
        env={**os.environ, "WEBHOOK_SECRET": secret},
    )  # fmt: skip
    stack.callback(receiver.terminate)
    await wait_for_http(f"http://127.0.0.1:{receiver_port}/webhooks")

    executor = ThreadPoolExecutor(max_workers=32)
    stack.callback(executor.shutdown, wait=False, cancel_futures=True)
    reference = [
        Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[TrivialWorkflow]),
        Worker(client, task_queue=ACTIVITY_QUEUE, activities=[noop], activity_executor=executor,
               max_concurrent_activities=24),
    ]  # fmt: skip
    workers = build_workers(client, settings, sessions, task_queues=[webhook_queue(prefix)])
    running = [asyncio.create_task(w.run()) for w in reference] + [asyncio.create_task(workers.run())]
    figures: dict[str, Any] = {}

    async def noop_activities() -> float:
        say(f"reference: {args.reference:,} no-op activities, window 100")
        started = time.perf_counter()
        await client.execute_workflow(
            TrivialWorkflow.run,
            TrivialInput(total=args.reference, window=100),
            id=f"bench-trivial-{uuid.uuid4().hex}",
            task_queue=WORKFLOW_QUEUE,
        )
        return args.reference / (time.perf_counter() - started)

    try:
        before = await noop_activities()
        await admin.ensure_running()
        say(f"a backlog of {args.events:,} events")
        write_events(sessions, args.events, datetime.now(UTC))
        peak = RssSampler(os.getpid(), interval=0.5, children=False)  # the worker, not its peers
        peak.start()
        started = time.perf_counter()
        await until_delivered(sessions, args.events, timeout=3600)
        figures["events_per_s"] = args.events / (time.perf_counter() - started)
        peak.stop()
        figures["rss_mib"] = peak.peak / (1024 * 1024)
        after = await noop_activities()
        figures["noop_before_after"] = [before, after]
        figures["noop_activities_per_s"] = (before + after) / 2

        say(f"lag: {args.rate} events/s for {args.lag_seconds} s")
        base = delivered(sessions)
        written = 0
        began = time.monotonic()
        while time.monotonic() - began < args.lag_seconds:
            write_events(sessions, max(1, args.rate // 10), datetime.now(UTC))
            written += max(1, args.rate // 10)
            await asyncio.sleep(0.1)
        await until_delivered(sessions, base + written, timeout=120)
        with sessions() as session:
            lags = [
                (delivered_at - occurred).total_seconds()
                for delivered_at, occurred in session.execute(
                    select(WebhookDelivery.delivered_at, EVENTS.c.occurred_at)
                    .join(EVENTS, EVENTS.c.id == WebhookDelivery.event_id)
                    .order_by(WebhookDelivery.id.desc())
                    .limit(written)
                )
            ]
        cuts = statistics.quantiles(lags, n=20)
        figures["lag_p50_s"] = statistics.median(lags)
        figures["lag_p95_s"] = cuts[18]
        figures["longest_history"] = await longest_history(client, webhook_workflow_id(endpoint.id, prefix))
        if args.campaign_contacts:
            figures["sends_per_s"] = await campaign_send_rate(args, client, scratch, deployment.server_pid)
    finally:
        await workers.shutdown()
        for worker in reference:
            await worker.shutdown()
        await asyncio.gather(*running, return_exceptions=True)
    figures["ratio"] = figures["events_per_s"] / figures["noop_activities_per_s"]
    return figures


async def campaign_send_rate(args: argparse.Namespace, client: Client, scratch: Path, server_pid: int) -> float:
    """Sends per second of a `--campaign-contacts` campaign, measured as `bench.campaign_bench`
    measures it (its own `outbound worker` process and database, this run's server)."""
    contacts = args.campaign_contacts
    say(f"the campaign send rate: {contacts:,} contacts, {campaign_bench.STEPS} steps (bench.campaign_bench)")
    campaign_args = campaign_bench.parse(["--contacts", str(contacts), "--compare", "0", "--admin-url", args.admin_url])
    code = scratch / "code"
    snapshot_code(code)
    bench = campaign_bench.Bench(campaign_args, client, scratch, server_pid, code)
    result = await campaign_bench.measure_campaign(bench, contacts)
    if not result.completed:
        raise RuntimeError(f"the {contacts:,}-contact campaign did not complete: no send rate to compare with")
    say(f"campaign: {result.sent:,} sends at {result.sends_per_s:.1f}/s")
    return result.sends_per_s


def show(figures: dict[str, Any]) -> None:
    table = Table("figure", "measured", "target")
    before, after = figures["noop_before_after"]
    table.add_row("no-op activities/s (before / after)", f"{before:.1f} / {after:.1f}", "")
    sends = figures.get("sends_per_s")
    table.add_row("events delivered/s (backlog)", f"{figures['events_per_s']:.1f}", "≥ the campaign send rate")
    if sends is not None:
        verdict = "keeps up" if figures["events_per_s"] >= sends else "[red]falls behind[/]"
        table.add_row("campaign sends/s (bench.campaign_bench, same run)", f"{sends:.1f}", verdict)
    table.add_row("events/s ÷ no-op activities/s", f"{figures['ratio']:.2f}", "")
    table.add_row(
        "lag p50 / p95 (steady rate)", f"{figures['lag_p50_s']:.2f} / {figures['lag_p95_s']:.2f} s", "p95 ≤ 2 s"
    )
    table.add_row("longest history of the delivery workflow", f"{figures['longest_history']:,}", "≤ 5,000")
    table.add_row("worker RSS peak during the backlog", f"{figures['rss_mib']:.0f} MiB", "")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="The backlog delivered for the rate.")
    parser.add_argument("--rate", type=int, default=100, help="Events per second written for the lag.")
    parser.add_argument("--lag-seconds", type=int, default=20, help="How long events are written at --rate.")
    parser.add_argument("--batch", type=int, default=50, help="Events per delivery activity.")
    parser.add_argument("--reference", type=int, default=10_000, help="No-op activities for the reference.")
    parser.add_argument(
        "--campaign-contacts",
        type=int,
        default=10_000,
        help="Contacts of the campaign whose send rate delivery must keep up with (0: not measured).",
    )
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="Where the PostgreSQL database is made.")
    return run_and_keep("webhooks", parser.parse_args(argv), measure, show, console)


if __name__ == "__main__":
    raise SystemExit(main())
