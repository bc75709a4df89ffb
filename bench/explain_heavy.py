"""Where the time of a campaign-sized operation goes: the plans of its slow statements.

    uv run python -m bench.explain_heavy --contacts 1000000

Seeds a fresh PostgreSQL database like `bench.campaign_bench` (N contacts, a 3-step
campaign), then runs the set-based operations the way the workers do: enrollment
(`prepare_campaign`), the first full plan of step 1, fetches of due rows, the sends of a
page marked SENT, and the plans of step 2 that follow (from the cursor, then full). Every
statement slower than `--min-ms` is explained by PostgreSQL's `auto_explain` as it runs
(ANALYZE, BUFFERS), so the plans are the real ones, with the real parameters and the
statistics the database had at that moment. Prints each operation's time and its slow
statements' plans, and writes them as Markdown under bench/results/.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import Engine, event, select, update

from activities.campaign import CampaignActivities
from bench.database import DEFAULT_ADMIN_URL, fresh_database, seed
from bench.report import RESULTS
from db.engine import SessionFactory, make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.models import Step, StepExecution
from db.planning import fetch_due, plan_step
from schemas.activity_io import PrepareCampaignInput
from schemas.enums import ExecutionStatus
from schemas.workflow_io import PlanCursor

console = Console(width=150)


@dataclass
class Operation:
    name: str
    seconds: float = 0.0
    plans: list[str] = field(default_factory=list)


class PlanCollector:
    """Every connection of `engine` loads auto_explain and hands its plans (NOTICEs) here."""

    def __init__(self, engine: Engine, min_ms: int) -> None:
        self.current: Operation | None = None
        self.operations: list[Operation] = []

        @event.listens_for(engine, "connect")
        def explain_slow_statements(connection: Any, _record: Any) -> None:
            connection.add_notice_handler(self._notice)
            with connection.cursor() as cursor:
                cursor.execute("LOAD 'auto_explain'")
                for setting, value in (
                    ("log_min_duration", str(min_ms)),
                    ("log_analyze", "on"),
                    ("log_buffers", "on"),
                    ("log_triggers", "on"),
                    ("log_nested_statements", "on"),
                    ("log_level", "notice"),
                ):
                    cursor.execute(f"SET auto_explain.{setting} = {value}")
            connection.commit()

    def _notice(self, diagnostic: Any) -> None:
        text = diagnostic.message_primary or ""
        if self.current is not None and text.startswith("duration:"):
            self.current.plans.append(text)

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        self.current = Operation(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.current.seconds = time.perf_counter() - started
            self.operations.append(self.current)
            console.print(f"{name}: {self.current.seconds:.2f} s, {len(self.current.plans)} slow statement(s)")
            self.current = None


def step_ids(sessions: SessionFactory, campaign_id: int) -> list[int]:
    with sessions() as session:
        return list(session.scalars(select(Step.id).where(Step.campaign_id == campaign_id).order_by(Step.position)))


def run_operations(sessions: SessionFactory, collector: PlanCollector, campaign_id: int, fetches: int) -> None:
    now = datetime.now(UTC)
    with collector.operation("enrollment (prepare_campaign)"):
        CampaignActivities(sessions).prepare_campaign(
            PrepareCampaignInput(campaign_id=campaign_id, now=now, start_at=now, version=1)
        )
    first, second, _ = step_ids(sessions, campaign_id)
    timed: Callable[[str], Any] = collector.operation
    with timed("plan_step, step 1 (every enrollment)"), unit_of_work(sessions) as session:
        plan_step(session, first, now)
    handed: list[int] = []
    for index in range(fetches):
        with timed(f"fetch_due {index + 1}, 200 rows"), unit_of_work(sessions) as session:
            handed += fetch_due(session, first, now, 200, 60, handed, f"explain:{index}").execution_ids
    with unit_of_work(sessions) as session:
        cursor_read = plan_step(session, second, now).cursor  # step 2's first pass: nobody is terminal yet
        session.execute(
            update(StepExecution)
            .where(StepExecution.id.in_(handed))
            .values(status=ExecutionStatus.SENT.value, sent_at=now, updated_at=now)
        )
    later = now + timedelta(seconds=5)
    with timed("plan_step, step 2 (changes since the cursor)"), unit_of_work(sessions) as session:
        plan_step(session, second, later, cursor_read or PlanCursor(scheduled_from=now, from_id=0, after_id=0))
    with timed("plan_step, step 2 (every enrollment)"), unit_of_work(sessions) as session:
        plan_step(session, second, later)


def markdown(contacts: int, seeded_s: float, operations: Sequence[Operation]) -> str:
    lines = [f"# Slow statements at {contacts:,} contacts", "", f"Seeded in {seeded_s:.1f} s.", ""]
    for operation in operations:
        lines += [f"## {operation.name}: {operation.seconds:.2f} s", ""]
        for plan in operation.plans:
            lines += ["```", plan, "```", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--min-ms", type=int, default=200, help="Explain statements slower than this.")
    parser.add_argument("--fetches", type=int, default=3)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as scratch,
        fresh_database("postgresql", args.admin_url, Path(scratch), f"explain{args.contacts}", keep=False) as url,
    ):
        engine = make_engine(url)
        try:
            upgrade(engine)
            sessions = make_session_factory(engine)
            console.print(f"seeding {args.contacts:,} contacts")
            seeded = seed(sessions, args.contacts, "1d")
            engine.dispose()  # connections from here on explain their slow statements
            collector = PlanCollector(engine, args.min_ms)
            run_operations(sessions, collector, seeded.campaign_id, args.fetches)
        finally:
            engine.dispose()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"explain-{args.contacts}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(markdown(args.contacts, seeded.seconds, collector.operations))
    console.print(f"plans written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
