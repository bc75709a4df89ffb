"""`outbound campaign report ID`: the funnel per step in the terminal and an HTML report
with charts. It refreshes the campaign's analytics buckets first (the same SQL as the
analytics schedule), so it needs only the database, not Temporal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from db.analytics import refresh_campaign
from db.analytics_funnel import campaign_funnel
from db.engine import unit_of_work
from db.models import Campaign
from domain.reply_intent import ReplyIntent
from schemas.campaign_funnel import CampaignFunnel
from starter.context import CliContext, UserError

REPORTS_DIR = Path(".outbound") / "reports"


def register(campaign_app: typer.Typer) -> None:
    campaign_app.command("report")(report)


def default_report_path(campaign_id: int) -> Path:
    return REPORTS_DIR / f"campaign-{campaign_id}.html"


def report(
    campaign_id: Annotated[int, typer.Argument(help="The campaign id printed by `campaign create`.")],
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Where to write the HTML report [default: .outbound/reports/campaign-ID.html].",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the funnel as JSON instead of a table.")] = False,
) -> None:
    """Refresh the campaign's analytics, print the funnel per step, write an HTML report."""
    from starter.report_html import check_writable, render_report, write_report

    ctx = CliContext()
    path = (html or default_report_path(campaign_id)).expanduser()
    with ctx.sessions() as session:
        if session.get(Campaign, campaign_id) is None:
            raise UserError(f"campaign {campaign_id} does not exist")
    try:
        check_writable(path)
    except OSError as error:
        raise UserError(f"cannot write the report to {path}: {error}") from None
    now = datetime.now(UTC)
    with unit_of_work(ctx.sessions) as session:
        refresh_campaign(session, campaign_id, now)
    with ctx.sessions() as session:
        funnel = campaign_funnel(session, campaign_id)
    if funnel is None:  # deleted between the check and now
        raise UserError(f"campaign {campaign_id} does not exist")
    try:
        write_report(path, render_report(funnel, now))
    except OSError as error:
        raise UserError(f"cannot write the report to {path}: {error}") from None
    if as_json:
        ctx.console.print_json(json.dumps(funnel.model_dump(mode="json") | {"html": str(path)}))
        return
    ctx.console.print(funnel_table(funnel))
    ctx.console.print(f"HTML report: [bold]{path}[/]")


def funnel_table(funnel: CampaignFunnel) -> Table:
    table = Table(title=f"Campaign {funnel.campaign_id} · {funnel.name} · {funnel.status} · {funnel.enrolled} enrolled")
    columns: tuple[str, ...] = ("step", "channel", "scheduled", "sent", "skipped", "failed", "cancelled")
    columns += ("replied", "bounced", "unsubscribed", "reply rate")
    intents = [intent.value for intent in ReplyIntent if any(intent.value in s.replies_by_intent for s in funnel.steps)]
    columns += tuple(intent.replace("_", " ") for intent in intents)  # a column per class that occurred
    for column in columns:
        table.add_column(column, justify="left" if column in ("channel", "skipped") else "right")
    for step in funnel.steps:
        reasons = ", ".join(f"{reason} {count}" for reason, count in step.skipped_by_reason.items())
        table.add_row(
            str(step.position),
            step.channel,
            str(step.scheduled),
            str(step.sent),
            f"{step.skipped} ({reasons})" if reasons else str(step.skipped),
            str(step.failed),
            str(step.cancelled),
            str(step.replied),
            str(step.bounced),
            str(step.unsubscribed),
            "-" if step.reply_rate is None else f"{100 * step.reply_rate:.1f}%",
            *(str(step.replies_by_intent.get(intent, 0)) for intent in intents),
        )
    return table
