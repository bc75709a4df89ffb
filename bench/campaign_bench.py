"""Benchmark: one Temporal dev server, a trivial-activity reference, and whole campaigns.

    uv run python -m bench.campaign_bench --contacts 100000          # compares with 10,000
    uv run python -m bench.campaign_bench --contacts 10000 --database-url sqlite

Measures, in one run against one dev server: no-op activities/s with the send window
and worker settings of the campaign; then per campaign size enrollment and planning
time, sends/s, the longest history of any run, the largest payload in any history and
the worker's peak RSS (the worker is a separate `outbound worker` process). Prints the
figures with the targets and writes them to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from temporalio.client import Client

from bench.database import (
    DEFAULT_ADMIN_URL,
    AfterGate,
    after_gate,
    fresh_database,
    seed,
    sent_by_step,
    summarise_sends,
)
from bench.histories import list_runs, scan
from bench.pgwait import PgWaitSampler
from bench.processes import (
    CpuMeter,
    RssSampler,
    free_port,
    outbound_command,
    snapshot_code,
    start_process,
    stop_process,
    trivial_command,
    wait_for_pollers,
)
from bench.report import CampaignResult, TrivialResult, show, verdicts, write
from bench.trivial import WORKFLOW_QUEUE, TrivialInput, TrivialWorkflow
from db.engine import make_engine, make_session_factory
from db.migrate import upgrade
from runtime.names import campaign_queue, campaign_workflow_id, step_workflow_id
from runtime.search_attributes import register_search_attributes
from runtime.secrets import new_secret_key
from runtime.settings import Settings
from runtime.temporal import DATA_CONVERTER
from schemas.workflow_io import Tuning
from starter.client import OutboundClient
from starter.devserver import start_dev_server, stop

STEPS = 3
console = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def say(message: str) -> None:
    err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")


@dataclass(frozen=True)
class Bench:
    """What every measurement of one invocation shares."""

    args: argparse.Namespace
    client: Client
    scratch: Path
    server_pid: int
    code: Path
    secret_key: str = field(default_factory=new_secret_key)  # emails carry signed unsubscribe links

    def worker_env(self, **values: str) -> dict[str, str]:
        return {
            "OUTBOUND_SECRET_KEY": self.secret_key,
            "OUTBOUND_TEMPORAL_ADDRESS": self.client.service_client.config.target_host,
            "OUTBOUND_TEMPORAL_NAMESPACE": self.client.namespace,
            "OUTBOUND_MAX_CONCURRENT_ACTIVITIES": str(self.args.max_concurrent_activities),
            **values,
        }

    def cpu_meters(self, worker_pids: list[int]) -> dict[str, CpuMeter]:
        return {
            "worker": CpuMeter([psutil.Process(pid) for pid in worker_pids]),
            "temporal": CpuMeter([psutil.Process(self.server_pid)]),
            "postgres": CpuMeter(name_prefix="postgres"),
        }

    @property
    def tuning(self) -> Tuning:
        return Tuning(send_window=self.args.window, send_batch_size=self.args.batch_size)


# The no-op reference never runs with fewer slots than this, whatever the campaign's
# worker uses: fewer slots slow no-op activities down, so tuning the campaign's worker
# down would otherwise flatter the ratio.
REFERENCE_SLOTS = 64


async def measure_trivial(bench: Bench) -> TrivialResult:
    """No-op activities, `window` in flight per workflow, on a worker process like the real
    one (at least REFERENCE_SLOTS activity slots)."""
    args = bench.args
    log = bench.scratch / "trivial-worker.log"
    slots = max(args.max_concurrent_activities, REFERENCE_SLOTS)
    env = bench.worker_env(OUTBOUND_DATABASE_URL="sqlite://", OUTBOUND_MAX_CONCURRENT_ACTIVITIES=str(slots))
    say(f"trivial reference at {slots} activity slots (the campaign worker: {args.max_concurrent_activities})")
    processes = [
        start_process(trivial_command(), env, log.with_suffix(f".{index}.log"), bench.code)
        for index in range(args.worker_processes)
    ]
    process = processes[0]
    sampler = RssSampler(process.pid, tuple(p.pid for p in processes[1:]))
    sampler.start()
    meters = bench.cpu_meters([p.pid for p in processes])
    prefix = f"bench-trivial-{uuid.uuid4().hex[:6]}"
    each = max(1, args.trivial_activities // args.trivial_workflows)
    try:
        for index, each_process in enumerate(processes):
            await wait_for_pollers(bench.client, WORKFLOW_QUEUE, each_process, log.with_suffix(f".{index}.log"))
        say(f"trivial: {each * args.trivial_workflows:,} no-op activities in {args.trivial_workflows} workflow(s)")
        for meter in meters.values():
            meter.start()
        started = time.perf_counter()
        handles = [
            await bench.client.start_workflow(
                TrivialWorkflow.run,
                TrivialInput(total=each, window=args.window, history_threshold=bench.tuning.history_threshold),
                id=f"{prefix}-{index}",
                task_queue=WORKFLOW_QUEUE,
            )
            for index in range(args.trivial_workflows)
        ]
        done = sum(await asyncio.gather(*(handle.result() for handle in handles)))
        wall = time.perf_counter() - started
        cpu = {name: meter.stop() for name, meter in meters.items()}
    finally:
        for each_process in processes:
            stop_process(each_process)
        sampler.stop()
    runs = await list_runs(
        bench.client,
        f"WorkflowType = 'BenchTrivialWorkflow' AND WorkflowId STARTS_WITH '{prefix}'",
        expected_ids={handle.id for handle in handles},
    )
    result = TrivialResult(done, args.trivial_workflows, wall, await scan(bench.client, runs), sampler.peak, cpu)
    say(f"trivial: {result.rate:.0f} activities/s ({wall:.1f} s wall)")
    return result


async def measure_campaign(bench: Bench, contacts: int) -> CampaignResult:
    args = bench.args
    with fresh_database(
        args.database_url, args.admin_url, bench.scratch, str(contacts), keep=args.keep_database
    ) as url:
        engine = make_engine(url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        reader = make_session_factory(create_engine(url))  # plain reads: no BEGIN IMMEDIATE on SQLite
        try:
            say(f"[{contacts:,}] seeding {contacts:,} contacts into {make_url(url).get_backend_name()}")
            seeded = seed(sessions, contacts, args.wait)
            say(f"[{contacts:,}] seeded in {seeded.seconds:.1f} s; starting `outbound worker`")
            return await _run_campaign(bench, contacts, url, seeded.campaign_id, seeded.seconds, reader)
        finally:
            engine.dispose()
            reader.kw["bind"].dispose()


async def _run_campaign(
    bench: Bench, contacts: int, url: str, campaign_id: int, seed_s: float, reader: Any
) -> CampaignResult:
    prefix = f"bench{contacts}-"
    outbox = bench.scratch / f"outbox-{contacts}"
    log = bench.scratch / f"worker-{contacts}.log"
    env = bench.worker_env(
        OUTBOUND_DATABASE_URL=url, OUTBOUND_OUTBOX_DIR=str(outbox), OUTBOUND_TASK_QUEUE_PREFIX=prefix
    )
    processes = [
        start_process(outbound_command(), env, log.with_suffix(f".{index}.log"), bench.code)
        for index in range(bench.args.worker_processes)
    ]
    process = processes[0]
    sampler = RssSampler(process.pid, tuple(p.pid for p in processes[1:]))
    sampler.start()
    waits = PgWaitSampler(url)
    try:
        for index, each_process in enumerate(processes):
            await wait_for_pollers(bench.client, campaign_queue(prefix), each_process, log.with_suffix(f".{index}.log"))
        await asyncio.sleep(1)
        idle = sampler.sample()
        meters = bench.cpu_meters([p.pid for p in processes])
        for meter in meters.values():
            meter.start()
        waits.start()
        started, launched_at = time.perf_counter(), datetime.now(UTC)
        control = OutboundClient(bench.client, prefix)
        handle = await control.launch(campaign_id, tuning=bench.tuning)
        say(f"[{contacts:,}] launched campaign {campaign_id} ({handle.id})")
        progress, cancelled_at = await _follow(control, campaign_id, reader, contacts, sampler, bench.args)
        wall = time.perf_counter() - started
        cpu = {name: meter.stop() for name, meter in meters.items()}
    finally:
        waits.stop()
        for each_process in processes:
            stop_process(each_process)
        sampler.stop()
    sends = summarise_sends(reader, campaign_id)
    cancel_figures = _gate_figures(reader, campaign_id, progress, "cancel")
    pause_figures = _gate_figures(reader, campaign_id, progress, "pause")
    say(f"[{contacts:,}] {sends.total.count:,} sent in {wall:.1f} s; reading the histories")
    expected = {campaign_workflow_id(campaign_id, prefix)} | {
        step_workflow_id(campaign_id, position, prefix) for position in range(1, STEPS + 1)
    }
    runs = await list_runs(bench.client, f"TaskQueue = '{campaign_queue(prefix)}'", expected_ids=expected)
    scanned = await scan(bench.client, runs)
    say(f"[{contacts:,}] {scanned.runs} runs, {scanned.events:,} events read in {scanned.seconds:.1f} s")
    if not bench.args.keep_temp:
        shutil.rmtree(outbox, ignore_errors=True)
    return CampaignResult(
        contacts=contacts,
        database=make_url(url).get_backend_name(),
        seed_s=seed_s,
        wall_s=wall,
        completed=cancelled_at is None,
        expected=contacts * STEPS,
        sends=sends,
        scan=scanned,
        idle_rss=idle,
        peak_rss=sampler.peak,
        cpu_s=cpu,
        pg_waits=waits.summary(),
        progress=progress,
        cancelled_at=cancelled_at,
        after_cancel=cancel_figures,
        after_pause=pause_figures,
        launched_at=launched_at,
    )


async def _follow(
    control: OutboundClient,
    campaign_id: int,
    reader: Any,
    contacts: int,
    sampler: RssSampler,
    args: argparse.Namespace,
) -> tuple[list[dict[str, Any]], float | None]:
    """Wait for the campaign to complete, reporting sends per step now and then; past the
    time limit, cancel it and let it wind down. Returns the progress and, if it was
    cancelled, when (epoch seconds, the clock of the history timestamps)."""
    result = asyncio.ensure_future(control.handle(campaign_id).result())
    started = time.perf_counter()
    progress: list[dict[str, Any]] = []
    limit = args.time_limit_minutes * 60
    pause_at: float | None = args.pause_at_minutes * 60 if args.pause_at_minutes else None
    while True:
        done, _ = await asyncio.wait([result], timeout=args.progress_seconds)
        elapsed = time.perf_counter() - started
        if result in done:
            result.result()  # raises if the campaign failed
            return progress, None
        sent = await asyncio.to_thread(sent_by_step, reader, campaign_id)
        progress.append({"elapsed_s": round(elapsed, 1), "sent_by_step": sent, "worker_rss": sampler.last})
        steps = ", ".join(f"step {position}: {count:,}" for position, count in sorted(sent.items())) or "none yet"
        say(f"[{contacts:,}] {elapsed:5.0f} s  sent {steps}; worker RSS {sampler.last / 2**20:.0f} MiB")
        if pause_at is not None and elapsed > pause_at:
            pause_at = None
            progress.append(await _pause_and_resume(control, campaign_id, contacts, args.pause_seconds))
        if elapsed > limit:
            say(f"[{contacts:,}] time limit of {args.time_limit_minutes:g} min reached: cancelling the campaign")
            cancelled_at = time.time()
            # Acknowledged (the Update answers once the gate is committed), as the CLI does.
            await control.cancel_now(campaign_id, reason="benchmark time limit")
            acknowledged_at = time.time()
            progress.append({"cancel_sent_at": cancelled_at, "cancel_acknowledged_at": acknowledged_at})
            say(f"[{contacts:,}] cancel acknowledged after {acknowledged_at - cancelled_at:.2f} s")
            try:
                await asyncio.wait_for(result, timeout=args.progress_seconds * 20)
            except (TimeoutError, asyncio.CancelledError):
                say(f"[yellow][{contacts:,}] the campaign did not close after the cancel; measuring what ran[/]")
            return progress, cancelled_at


async def _pause_and_resume(
    control: OutboundClient, campaign_id: int, contacts: int, hold_seconds: float
) -> dict[str, float]:
    """Pause through the Update (as `outbound campaign pause` does), hold, resume; the
    times let `after_gate` count what went out while the gate was shut."""
    say(f"[{contacts:,}] pausing the campaign for {hold_seconds:g} s")
    paused_at = time.time()
    await control.pause_now(campaign_id, reason="benchmark pause")
    acknowledged_at = time.time()
    say(f"[{contacts:,}] pause acknowledged after {acknowledged_at - paused_at:.2f} s")
    await asyncio.sleep(hold_seconds)
    resumed_at = time.time()
    await control.resume_now(campaign_id)
    resume_acknowledged_at = time.time()
    say(f"[{contacts:,}] resume acknowledged after {resume_acknowledged_at - resumed_at:.2f} s")
    return {
        "pause_sent_at": paused_at,
        "pause_acknowledged_at": acknowledged_at,
        "resume_sent_at": resumed_at,
        "resume_acknowledged_at": resume_acknowledged_at,
    }


def _gate_figures(reader: Any, campaign_id: int, progress: list[dict[str, Any]], kind: str) -> AfterGate | None:
    """What went out after the run's `kind` ("cancel" or "pause") request, if it made one."""
    entry = next((p for p in progress if f"{kind}_sent_at" in p), None)
    if entry is None:
        return None
    moments = {key: datetime.fromtimestamp(value, UTC) for key, value in entry.items()}
    return after_gate(
        reader,
        campaign_id,
        moments[f"{kind}_sent_at"],
        moments[f"{kind}_acknowledged_at"],
        moments.get("resume_sent_at"),
        moments.get("resume_acknowledged_at"),
    )


async def run(args: argparse.Namespace) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="outbound-bench-"))
    load = {"start": [round(value, 2) for value in os.getloadavg()]}
    if load["start"][0] > 1.0:
        say(f"[yellow]the machine is busy (load {load['start'][0]:.1f}): figures will be lower than on an idle one[/]")
    code = scratch / "code"
    digest = snapshot_code(code)
    say(f"{args.worker_processes} worker process(es) for the campaign and for the trivial reference")
    say(f"workers run a copy of the code taken now (digest {digest}), whatever happens to the work tree")
    port = free_port()
    say(f"starting the Temporal dev server on 127.0.0.1:{port} (files in {scratch})")
    server = start_dev_server(scratch / "temporal", port=port, ui_port=free_port())
    failed = True
    try:
        client = await Client.connect(f"127.0.0.1:{port}", data_converter=DATA_CONVERTER)
        await register_search_attributes(client, client.namespace)
        bench = Bench(args, client, scratch, server.pid, code)
        trivial = await measure_trivial(bench)
        sizes = [size for size in (args.compare, args.contacts) if size]
        campaigns = [await measure_campaign(bench, size) for size in sizes]
        trivial.repeat_rate = (await measure_trivial(bench)).first_rate
        main, smaller = campaigns[-1], (campaigns[0] if len(campaigns) > 1 else None)
        found = verdicts(trivial, main, smaller, batch_size=args.batch_size)
        show(trivial, campaigns[::-1], found, console)
        load["end"] = [round(value, 2) for value in os.getloadavg()]
        arguments = {k: str(v) for k, v in vars(args).items()}
        path = write(arguments, trivial, campaigns[::-1], found, load, digest)
        console.print(f"Load average (1, 5, 15 min) at start {load['start']}, at end {load['end']}")
        console.print(f"Results written to {path}")
        failed = False
        return 0 if all(v.passed is not False for v in found) else 1
    finally:
        stop(server)
        if failed or args.keep_temp:
            say(f"kept {scratch} (dev server and worker logs)")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000, help="Contacts in the measured campaign.")
    parser.add_argument(
        "--compare",
        type=int,
        default=None,
        help="Also run a campaign of this size first, to show worker RSS is flat (default: contacts/10; 0: none).",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql",
        help="'postgresql' (a fresh database per size, dropped afterwards), 'sqlite' (a fresh file per size)"
        " or a SQLAlchemy URL used as it is.",
    )
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="Where `postgresql` creates its databases.")
    parser.add_argument("--wait", default="0s", help="Wait between the steps (campaign file syntax, e.g. 0s, 5s).")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=1,
        help="Worker processes for the campaign and, the same number, for the trivial reference (default 1).",
    )
    parser.add_argument("--window", type=int, default=Tuning().send_window, help="Activities in flight per workflow.")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=Tuning().send_batch_size,
        help="Messages of one sender per send activity (OUTBOUND_SEND_BATCH_SIZE; 1: an activity per message).",
    )
    parser.add_argument(
        "--max-concurrent-activities",
        type=int,
        default=Settings.model_fields["max_concurrent_activities"].default,
        help="Worker setting (per task queue).",
    )
    parser.add_argument("--trivial-activities", type=int, default=5000, help="No-op activities of the reference.")
    parser.add_argument("--trivial-workflows", type=int, default=1, help="Workflows sharing the no-op activities.")
    parser.add_argument(
        "--time-limit-minutes",
        type=float,
        default=60,
        help="Cancel a campaign still running after this long; its figures are then those of the part that ran.",
    )
    parser.add_argument(
        "--pause-at-minutes",
        type=float,
        default=0,
        help="Pause the campaign this long after launch (0: never), hold it --pause-seconds, resume it.",
    )
    parser.add_argument("--pause-seconds", type=float, default=20, help="How long the mid-run pause holds.")
    parser.add_argument("--progress-seconds", type=float, default=15, help="How often progress is printed.")
    parser.add_argument("--keep-database", action="store_true", help="Do not drop the PostgreSQL databases.")
    parser.add_argument("--keep-temp", action="store_true", help="Keep the dev server files, logs and outbox.")
    args = parser.parse_args(argv)
    if args.compare is None:
        args.compare = args.contacts // 10 if args.contacts >= 10 else 0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
