"""`outbound retention run`: purge details past their age now (the schedule does it daily)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from db.engine import unit_of_work
from db.retention import cutoffs, event_cutoff, purge
from starter.context import CliContext

retention_app = typer.Typer(help="Purge old message bodies and error payloads; counts are kept.", no_args_is_help=True)


@retention_app.command("run")
def run(dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged.")] = False) -> None:
    """Clear inbound bodies older than OUTBOUND_RETENTION__INBOUND_BODY_DAYS and error text of
    finished executions and closed dead letters older than OUTBOUND_RETENTION__ERROR_PAYLOAD_DAYS;
    delete events for the app older than OUTBOUND_RETENTION__EVENT_DAYS once delivered."""
    ctx = CliContext()
    now = datetime.now(UTC)
    inbound_before, errors_before = cutoffs(now, ctx.settings.retention)
    with unit_of_work(ctx.sessions) as session:
        counts = purge(
            session, now, inbound_before, errors_before, dry_run=dry_run,
            events_before=event_cutoff(now, ctx.settings.retention),
        )  # fmt: skip
    verb = "would purge" if dry_run else "purged"
    ctx.console.print(
        f"Retention {verb}: {counts.inbound_messages} inbound message bodies (received before"
        f" {inbound_before:%Y-%m-%d}), {counts.executions} execution errors and {counts.dead_letters}"
        f" dead-letter errors (finished before {errors_before:%Y-%m-%d}), and {counts.events} delivered events"
        f" older than {ctx.settings.retention.event_days} days"
    )
