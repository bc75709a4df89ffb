"""`outbound schedules sync | list`: Outbound's Temporal Schedules.

The schedules themselves are operated with the `temporal` CLI as any other schedule
(`temporal schedule list / describe / toggle / trigger`); these commands install them and
show where each one stands.
"""

from __future__ import annotations

from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from temporalio.client import Client

from runtime.schedules import (
    ScheduleStatus,
    SyncAction,
    SyncOutcome,
    all_schedules,
    schedule_statuses,
    sync_schedules,
)
from runtime.settings import Settings
from starter.context import CliContext

schedules_app = typer.Typer(help="Temporal Schedules: warmup reset, follow-ups, analytics, retention.")


def register(app: typer.Typer) -> None:
    app.add_typer(schedules_app, name="schedules", no_args_is_help=True)


@schedules_app.command("sync")
def sync() -> None:
    """Create the missing schedules and update the changed ones (idempotent; pauses are kept)."""
    from starter.asyncio_bridge import connect_or_explain, run

    ctx = CliContext()

    async def go() -> list[SyncOutcome]:
        ctx.jobs_file()  # a bad jobs file: a clear error, not a traceback
        return await sync_schedules(await connect_or_explain(ctx.settings), ctx.settings, all_schedules(ctx.settings))

    print_sync(ctx.console, run(go()))


def print_sync(console: Console, outcomes: list[SyncOutcome]) -> None:
    for outcome in outcomes:
        console.print(f"{outcome.action.value:>9}  {outcome.schedule_id}  ({outcome.workflow})", highlight=False)
    current = [outcome for outcome in outcomes if outcome.action is not SyncAction.DELETED]
    changed = sum(outcome.action is not SyncAction.UNCHANGED for outcome in current)
    deleted = len(outcomes) - len(current)
    summary = f"{len(current)} schedules, {changed} created or updated"
    console.print(summary + (f", {deleted} obsolete deleted" if deleted else ""), highlight=False)


@schedules_app.command("list")
def list_() -> None:
    """Show each schedule's state, next and last run (UTC)."""
    from starter.asyncio_bridge import connect_or_explain, run

    ctx = CliContext()

    async def go() -> list[ScheduleStatus]:
        ctx.jobs_file()
        return await schedule_statuses(
            await connect_or_explain(ctx.settings), ctx.settings, all_schedules(ctx.settings)
        )

    statuses = run(go())
    table = Table("Schedule", "Workflow", "State", "Next run (UTC)", "Last run (UTC)", "Running")
    table.title, table.title_justify = f"Schedules: {len(statuses)}", "left"
    for status in statuses:
        table.add_row(
            Text(status.schedule_id),
            Text(status.workflow),
            Text(_state(status)),
            Text(_when(status.next_run)),
            Text(_when(status.last_run)),
            Text(str(status.running) if status.exists else ""),
        )
    ctx.console.print(table)
    if any(not status.exists or not status.current for status in statuses):
        ctx.err.print("[yellow]Some schedules are missing or out of date: run `outbound schedules sync`.[/]")


def _state(status: ScheduleStatus) -> str:
    if not status.exists:
        return "missing"
    state = "paused" if status.paused else "active"
    if status.paused and status.note:
        state += f" ({status.note})"
    return state if status.current else f"{state}, out of date"


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""


async def sync_for_dev(client: Client, settings: Settings, console: Console) -> None:
    """`outbound dev-server` and `outbound demo` install the schedules on the server they use;
    a failure is reported and does not stop the server."""
    try:
        print_sync(console, await sync_schedules(client, settings, all_schedules(settings)))
    except Exception as error:
        console.print(f"[yellow]schedules not synced:[/] {error}; run `outbound schedules sync`")
