"""Figures of a benchmark run: the targets, the table a person reads and the JSON kept."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.database import AfterGate, SendSummary
from bench.histories import WORKFLOW_TASK, HistoryScan, Largest

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024
PLANNING_LIMIT_S = 10.0
PLANNING_TOTAL_LIMIT_S = 60.0
FIRST_SEND_LIMIT_S = 10.0
HISTORY_LIMIT = 5000
PAYLOAD_LIMIT = 64 * 1024
RSS_GROWTH_LIMIT = 1.25  # peak RSS at N may be at most 25% above the peak at the smaller size
RATE_RATIO_LIMIT = 0.6  # sends/s over no-op activities/s, a message per activity
BATCHED_RATE_RATIO_LIMIT = 1.0  # the same with batches: several messages per activity
BATCHED_EVENTS_PER_MESSAGE_LIMIT = 0.5


@dataclass
class TrivialResult:
    activities: int
    workflows: int
    wall_s: float
    scan: HistoryScan
    peak_rss: int
    cpu_s: dict[str, float]
    # The same reference measured again after the campaigns: on this kind of machine one
    # 15-second measurement moved between 230 and 370 activities/s from run to run.
    repeat_rate: float | None = None

    @property
    def first_rate(self) -> float:
        return self.scan.timings("bench_noop").rate()

    @property
    def rate(self) -> float:
        """The mean of the measurements before and after the campaigns."""
        rates = [self.first_rate] + ([self.repeat_rate] if self.repeat_rate else [])
        return sum(rates) / len(rates)

    def to_json(self) -> dict[str, Any]:
        return {
            "activities": self.activities,
            "workflows": self.workflows,
            "wall_s": round(self.wall_s, 2),
            "activities_per_s": round(self.rate, 1),
            "activities_per_s_before_after": [round(self.first_rate, 1), round(self.repeat_rate or 0.0, 1)],
            "activities_per_s_wall": round(self.activities / self.wall_s, 1) if self.wall_s else 0,
            "worker_peak_rss_mib": round(self.peak_rss / MIB, 1),
            "cpu_cores": _cores(self.cpu_s, self.wall_s),
            "histories": self.scan.summary(),
        }


@dataclass
class CampaignResult:
    contacts: int
    database: str
    seed_s: float
    wall_s: float
    completed: bool
    expected: int
    sends: SendSummary
    scan: HistoryScan
    idle_rss: int
    peak_rss: int
    cpu_s: dict[str, float]
    pg_waits: dict[str, float]
    progress: list[dict[str, Any]] = field(default_factory=list)
    cancelled_at: float | None = None  # epoch seconds: the time limit's cancel was sent
    after_cancel: AfterGate | None = None  # what went out after that cancel
    after_pause: AfterGate | None = None  # what went out while a mid-run pause held
    launched_at: datetime | None = None  # when the launch was sent (the first send is measured from it)

    @property
    def first_send_s(self) -> float | None:
        """Launch → the first message SENT (its `sent_at`)."""
        first = self.sends.total.first
        return (first - self.launched_at).total_seconds() if first and self.launched_at else None

    @property
    def sent(self) -> int:
        return self.sends.total.count

    @property
    def sends_per_s(self) -> float:
        return self.sends.total.per_second

    def activity_max(self, name: str) -> float:
        """The longest run of an activity before a time-limit cancel (see `longest_split`)."""
        return self.longest(name).size

    def longest(self, name: str) -> Largest:
        return self.scan.timings(name).longest_split(self.cancelled_at)[0]

    def longest_during_cancel(self, name: str) -> Largest:
        return self.scan.timings(name).longest_split(self.cancelled_at)[1]

    def to_json(self) -> dict[str, Any]:
        plan = self.scan.timings("plan_step")
        return {
            "contacts": self.contacts,
            "database": self.database,
            "seed_s": round(self.seed_s, 2),
            "campaign_wall_s": round(self.wall_s, 2),
            "first_send_s": round(self.first_send_s, 2) if self.first_send_s is not None else None,
            "completed": self.completed,
            "enrollment_s": round(self.activity_max("prepare_campaign"), 3),
            "planning": {
                "longest_plan_step_s": round(self.activity_max("plan_step"), 3),
                "longest_plan_step_during_cancel_s": round(self.longest_during_cancel("plan_step").size, 3),
                "plan_step_calls": len(plan.running),
                "plan_step_total_s": round(sum(plan.running), 3),
            },
            "sends": {
                **self.sends.total.to_json(),
                "expected": self.expected,
                "by_step": {position: sends.to_json() for position, sends in sorted(self.sends.by_step.items())},
                "statuses": self.sends.by_status,
            },
            "after_cancel": _gate_json(self.after_cancel),
            "after_pause": _gate_json(self.after_pause),
            "worker_rss_mib": {"idle": round(self.idle_rss / MIB, 1), "peak": round(self.peak_rss / MIB, 1)},
            "cpu_cores": _cores(self.cpu_s, self.wall_s),
            "postgres_sessions": self.pg_waits,
            "histories": self.scan.summary(),
            "progress": self.progress,
        }


def _seconds(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else "none after"


def _cores(cpu_s: dict[str, float], wall_s: float) -> dict[str, float]:
    """CPU seconds per process group divided by wall seconds: cores kept busy."""
    return {name: round(value / wall_s, 2) if wall_s else 0.0 for name, value in cpu_s.items()}


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: str
    target: str
    passed: bool | None  # None: not measured in this run


def verdicts(
    trivial: TrivialResult, main: CampaignResult, smaller: CampaignResult | None, *, batch_size: int = 1
) -> list[Verdict]:
    campaigns = [main] + ([smaller] if smaller else [])
    rate_limit = BATCHED_RATE_RATIO_LIMIT if batch_size > 1 else RATE_RATIO_LIMIT
    enrollment = max(c.activity_max("prepare_campaign") for c in campaigns)
    planning = max(c.activity_max("plan_step") for c in campaigns)
    planning_total = sum(main.scan.timings("plan_step").running)
    longest = max(c.scan.longest.size for c in campaigns)
    payload = max(c.scan.largest_payload.size for c in campaigns)
    ratio = main.sends_per_s / trivial.rate if trivial.rate else 0.0
    found = [
        Verdict(
            "enrollment (prepare_campaign)",
            f"{enrollment:.2f} s",
            f"≤ {PLANNING_LIMIT_S:.0f} s",
            enrollment <= PLANNING_LIMIT_S,
        ),
        Verdict(
            "step planning (longest plan_step)",
            f"{planning:.2f} s",
            f"≤ {PLANNING_LIMIT_S:.0f} s",
            planning <= PLANNING_LIMIT_S,
        ),
        Verdict(
            "step planning (all plan_step calls)",
            f"{planning_total:.1f} s",
            f"≤ {PLANNING_TOTAL_LIMIT_S:.0f} s",
            planning_total <= PLANNING_TOTAL_LIMIT_S,
        ),
        Verdict(
            "launch → first message sent",
            f"{main.first_send_s:.1f} s" if main.first_send_s is not None else "-",
            f"≤ {FIRST_SEND_LIMIT_S:.0f} s",
            main.first_send_s is not None and main.first_send_s <= FIRST_SEND_LIMIT_S,
        ),
        Verdict("longest history (any run)", f"{longest:,} events", f"≤ {HISTORY_LIMIT:,}", longest <= HISTORY_LIMIT),
        Verdict("largest payload in any history", f"{payload:,} B", f"≤ {PAYLOAD_LIMIT:,} B", payload <= PAYLOAD_LIMIT),
        Verdict(
            "sends/s ÷ trivial activities/s",
            f"{main.sends_per_s:.0f} / {trivial.rate:.0f} = {ratio:.2f}",
            f"≥ {rate_limit:.2f}" + (f" (batches of {batch_size})" if batch_size > 1 else ""),
            ratio >= rate_limit,
        ),
        Verdict(
            "all messages sent",
            f"{main.sent:,} / {main.expected:,}" + ("" if main.completed else " (time limit: cancelled)"),
            "all",
            main.sent == main.expected if main.completed else None,
        ),
    ]
    if batch_size > 1 and main.sent:
        per_message = main.scan.events / main.sent
        found.append(
            Verdict(
                "history events per message",
                f"{per_message:.2f} ({main.scan.total_actions / main.sent:.2f} actions)",
                f"≤ {BATCHED_EVENTS_PER_MESSAGE_LIMIT:.1f}",
                per_message <= BATCHED_EVENTS_PER_MESSAGE_LIMIT,
            )
        )
    if smaller is None:
        found.append(Verdict("worker RSS flat with campaign size", "not compared", "", None))
    else:
        growth = main.peak_rss / smaller.peak_rss if smaller.peak_rss else 0.0
        found.append(
            Verdict(
                "worker RSS flat with campaign size",
                f"{main.peak_rss / MIB:.0f} MiB at {main.contacts:,} vs {smaller.peak_rss / MIB:.0f} MiB"
                f" at {smaller.contacts:,} (x{growth:.2f})",
                f"≤ x{RSS_GROWTH_LIMIT:.2f}",
                growth <= RSS_GROWTH_LIMIT,
            )
        )
    return found


def _latency(scan: HistoryScan, name: str) -> str:
    timings = scan.timings(name)
    if not timings.running:
        return "-"
    run, queued = sorted(timings.running), sorted(timings.queued)
    return f"run {_ms(run, 0.5)}/{_ms(run, 0.95)} ms, queued {_ms(queued, 0.5)}/{_ms(queued, 0.95)} ms"


def _per_send(result: CampaignResult) -> str:
    """What each message cost Temporal: the events, workflow tasks and fetches behind it
    (the trivial reference pays 3 events and a fraction of a workflow task per activity)."""
    if not result.sent:
        return "-"
    fetches = result.scan.timings("fetch_due").completed
    return f"{_events_and_tasks(result.scan, result.sent)}, 1 fetch_due per {result.sent / max(fetches, 1):.0f} sends"


def _events_and_tasks(scan: HistoryScan, units: int) -> str:
    """History events, workflow tasks and Temporal actions per message sent or per no-op
    activity."""
    return (
        f"{scan.events / units:.2f} events, {scan.timings(WORKFLOW_TASK).completed / units:.2f} workflow tasks,"
        f" {scan.total_actions / units:.2f} actions"
    )


def _ms(ordered: list[float], fraction: float) -> str:
    return f"{ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000:.0f}"


def _figures(result: CampaignResult, trivial: TrivialResult) -> list[tuple[str, str]]:
    plan = result.scan.timings("plan_step")
    cores = _cores(result.cpu_s, result.wall_s)
    waits = ", ".join(f"{label} {mean:.1f}" for label, mean in list(result.pg_waits.items())[:4]) or "-"
    return [
        ("seed (import contacts, create campaign)", f"{result.seed_s:.1f} s"),
        ("enrollment (prepare_campaign)", f"{result.activity_max('prepare_campaign'):.2f} s"),
        (
            "longest plan_step / calls / total",
            f"{result.activity_max('plan_step'):.2f} s / {len(plan.running)} / {sum(plan.running):.1f} s",
        ),
        ("longest plan_step was", result.longest("plan_step").where or "-"),
        (
            "longest plan_step meeting the time-limit cancel",
            f"{result.longest_during_cancel('plan_step').size:.2f} s" if result.cancelled_at else "-",
        ),
        (
            "time-limit cancel: acknowledged / last send / sent after / begun after the ack",
            _gate_row(result.after_cancel),
        ),
        (
            "mid-run pause: acknowledged / last send / sent while paused / begun after the ack",
            _gate_row(result.after_pause),
        ),
        (
            "launch → first message sent",
            f"{result.first_send_s:.1f} s" if result.first_send_s is not None else "-",
        ),
        (
            "campaign wall time (launch → closed)",
            f"{result.wall_s:.1f} s" + ("" if result.completed else " (cancelled at the time limit)"),
        ),
        ("messages sent / expected", f"{result.sent:,} / {result.expected:,}"),
        ("sends/s (first → last send)", f"{result.sends_per_s:.1f} over {result.sends.total.span_s:.1f} s"),
        (
            "sends/s per step (its own first → last)",
            ", ".join(f"{s.per_second:.0f}" for _, s in sorted(result.sends.by_step.items())),
        ),
        ("sends/s ÷ trivial activities/s", f"{result.sends_per_s / trivial.rate:.2f}" if trivial.rate else "-"),
        ("longest history", f"{result.scan.longest.size:,} events ({result.scan.longest.where})"),
        ("workflow runs (incl. continue-as-new)", f"{result.scan.runs}"),
        ("largest payload", f"{result.scan.largest_payload.size:,} B ({result.scan.largest_payload.where})"),
        ("worker RSS idle / peak", f"{result.idle_rss / MIB:.0f} / {result.peak_rss / MIB:.0f} MiB"),
        (
            "CPU worker / Temporal / PostgreSQL",
            " / ".join(f"{cores.get(k, 0):.2f}" for k in ("worker", "temporal", "postgres")) + " cores",
        ),
        ("PostgreSQL sessions (mean)", waits),
        ("send_message p50/p95", _latency(result.scan, "send_message")),
        ("send_batch p50/p95", _latency(result.scan, "send_batch")),
        ("fetch_due p50/p95", _latency(result.scan, "fetch_due")),
        ("workflow task p50/p95", _latency(result.scan, WORKFLOW_TASK)),
        ("per message sent", _per_send(result)),
    ]


def show(trivial: TrivialResult, campaigns: list[CampaignResult], found: list[Verdict], console: Console) -> None:
    reference = Table(title="Reference: trivial activities on the same server and worker settings")
    reference.add_column("figure")
    reference.add_column("value", justify="right")
    reference.add_row("no-op activities", f"{trivial.activities:,} in {trivial.workflows} workflow(s)")
    reference.add_row(
        "activities/s (first → last completion)",
        f"{trivial.rate:.1f}"
        + (
            f" (mean of {trivial.first_rate:.1f} before, {trivial.repeat_rate:.1f} after)"
            if trivial.repeat_rate
            else ""
        ),
    )
    cores = _cores(trivial.cpu_s, trivial.wall_s)
    reference.add_row(
        "CPU worker / Temporal / PostgreSQL",
        " / ".join(f"{cores.get(k, 0):.2f}" for k in ("worker", "temporal", "postgres")) + " cores",
    )
    reference.add_row(
        "noop / workflow task p50/p95",
        f"{_latency(trivial.scan, 'bench_noop')}; {_latency(trivial.scan, WORKFLOW_TASK)}",
    )
    if trivial.activities:
        reference.add_row("per activity", _events_and_tasks(trivial.scan, trivial.activities))
    console.print(reference)
    figures = Table(title="Campaign: email → sms → voicemail, window always, gap 0 s")
    figures.add_column("figure")
    for result in campaigns:
        figures.add_column(f"{result.contacts:,} contacts ({result.database})", justify="right")
    rows = [_figures(result, trivial) for result in campaigns]
    for index, (name, _) in enumerate(rows[0]):
        figures.add_row(name, *(row[index][1] for row in rows))
    console.print(figures)
    targets = Table(title="Targets")
    for column in ("target", "measured", "limit", "result"):
        targets.add_column(column)
    for verdict in found:
        mark = "[green]PASS[/]" if verdict.passed else "[red]FAIL[/]" if verdict.passed is False else "n/a"
        targets.add_row(verdict.name, verdict.measured, verdict.target, mark)
    console.print(targets)


def write(
    arguments: dict[str, Any],
    trivial: TrivialResult,
    campaigns: list[CampaignResult],
    found: list[Verdict],
    load: dict[str, list[float]],
    code_digest: str,
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    document = {
        "created_at": datetime.now(UTC).isoformat(),
        "arguments": arguments,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": load,
        },
        "code": {**_code_version(), "snapshot_digest": code_digest},
        "trivial": trivial.to_json(),
        "campaigns": [result.to_json() for result in campaigns],
        "targets": [
            {
                "name": v.name,
                "measured": v.measured,
                "limit": v.target,
                "result": "PASS" if v.passed else "FAIL" if v.passed is False else "n/a",
            }
            for v in found
        ],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def _code_version() -> dict[str, Any]:
    """The commit measured and how many files differed from it (workers run the work tree)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=RESULTS.parent.parent, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if not line[3:].startswith("bench/")]
    return {"commit": git("rev-parse", "HEAD"), "changed_files_outside_bench": len(changed)}


def _gate_json(gate: AfterGate | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    return {
        "last_send_s": gate.last_send_s,
        "sent_after": gate.sent_after,
        "began_after_acknowledgement": gate.began_after,
        "acknowledged_s": gate.acknowledged_s,
        "resume_acknowledged_s": gate.resume_acknowledged_s,
        "first_send_after_resume_s": gate.first_send_after_resume_s,
    }


def _gate_row(gate: AfterGate | None) -> str:
    if gate is None:
        return "-"
    figures = f"{gate.acknowledged_s:.2f} s / {_seconds(gate.last_send_s)} / {gate.sent_after:,} / {gate.began_after:,}"
    if gate.resume_acknowledged_s is not None:
        figures += (
            f"; resume acknowledged {gate.resume_acknowledged_s:.2f} s,"
            f" first send {_seconds(gate.first_send_after_resume_s)} after it was sent"
        )
    return figures
