"""`outbound campaign ...`: create, launch, pause, resume, cancel, status."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from db.campaigns_repo import CampaignCreateError, create_campaign
from db.engine import unit_of_work
from db.models import Campaign
from db.status import campaign_report
from domain.campaign_yaml import CampaignFileError, load_campaign_file
from domain.durations import parse_seconds
from domain.templates import TemplateRenderError
from schemas.enums import CampaignStatus
from schemas.reports import CampaignReport
from schemas.signals import LifecycleAck
from starter.context import CliContext, UserError

if TYPE_CHECKING:
    from runtime.telemetry import Tracing
    from starter.client import OutboundClient

# The Temporal client is imported inside the commands that need it, so `outbound
# contacts ...` and `--help` start fast.

T = TypeVar("T")

campaign_app = typer.Typer(help="Create, launch and control campaigns.", no_args_is_help=True)

CampaignId = Annotated[int, typer.Argument(help="The campaign id printed by `campaign create`.")]


@campaign_app.command("create")
def create(file: Annotated[Path, typer.Argument(help="Campaign file (YAML).")]) -> None:
    """Validate a campaign file and store it as a DRAFT campaign; prints the new id."""
    ctx = CliContext()
    try:
        spec = load_campaign_file(file)
        with unit_of_work(ctx.sessions) as session:
            campaign_id = create_campaign(session, spec, datetime.now(UTC))
    except (CampaignFileError, CampaignCreateError, TemplateRenderError) as error:
        raise UserError(str(error)) from None
    ctx.err.print(f"Created campaign [bold]{campaign_id}[/] ({spec.name}, {len(spec.steps)} steps)")
    ctx.console.print(campaign_id)


@campaign_app.command("launch")
def launch(
    campaign_id: CampaignId,
    start_delay: Annotated[
        str, typer.Option(help="Wait before enrolling, e.g. 5m; pause/cancel work during it.")
    ] = "0s",
) -> None:
    """Start the campaign's workflow (once: a second launch is refused)."""
    ctx = CliContext()
    try:
        delay = parse_seconds(start_delay)
    except ValueError as error:
        raise UserError(f"--start-delay: {error}") from None
    name = _draft(ctx, campaign_id)

    async def go() -> str:
        # The trace of the whole campaign starts here (when OTEL_TRACES_EXPORTER is set).
        tracing = _tracing()
        try:
            with tracing.span("campaign launch", {"outbound.campaign_id": campaign_id}):
                client = await _client(ctx, tracing)
                handle = await client.launch(campaign_id, start_delay_seconds=delay, name=name)
            return handle.id
        finally:
            tracing.shutdown()

    workflow_id = _control(go)
    ctx.console.print(f"Launched campaign {campaign_id} as workflow [bold]{workflow_id}[/]")


def _draft(ctx: CliContext, campaign_id: int) -> str:
    """The campaign's name, once it is known to be a DRAFT that may be launched."""
    with ctx.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise UserError(f"campaign {campaign_id} does not exist")
        if campaign.status != CampaignStatus.DRAFT.value:
            raise UserError(f"campaign {campaign_id} is {campaign.status}; only a DRAFT campaign can be launched")
        return campaign.name


async def _client(ctx: CliContext, tracing: Tracing | None = None) -> OutboundClient:
    from starter.asyncio_bridge import connect_or_explain
    from starter.client import OutboundClient

    interceptors = tracing.interceptors() if tracing is not None else []
    return OutboundClient(
        await connect_or_explain(ctx.settings, interceptors), ctx.settings.task_queue_prefix, ctx.settings.tuning()
    )


def _tracing() -> Tracing:
    from runtime.telemetry import TelemetryConfigError, Tracing

    try:
        return Tracing.from_environment("outbound-cli")
    except TelemetryConfigError as error:
        raise UserError(str(error)) from None


def _control(action: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a Temporal action; refusals (finished, not launched) become user errors."""
    from starter.asyncio_bridge import run
    from starter.client import CampaignControlError

    try:
        return run(action())
    except CampaignControlError as error:
        raise UserError(str(error)) from None


def _signal(campaign_id: int, verb: str, reason: str | None = None) -> None:
    """Pause, resume or cancel through the campaign's Workflow Updates: the answer comes
    once the gate is committed, or is a refusal that says why ("campaign 3 is COMPLETED")."""
    ctx = CliContext()
    with ctx.sessions() as session:
        if session.get(Campaign, campaign_id) is None:
            raise UserError(f"campaign {campaign_id} does not exist")

    async def go() -> LifecycleAck:
        client = await _client(ctx)
        if verb == "pause":
            return await client.pause_now(campaign_id, reason)
        if verb == "resume":
            return await client.resume_now(campaign_id)
        return await client.cancel_now(campaign_id, reason)

    ack = _control(go)
    ctx.console.print(f"Campaign {campaign_id} is [bold]{ack.state.value}[/] ({verb} acknowledged)")


@campaign_app.command("pause")
def pause(
    campaign_id: CampaignId, reason: Annotated[str | None, typer.Option(help="Why (kept in history).")] = None
) -> None:
    """Hold every contact where it is; nothing more is sent until `resume`."""
    _signal(campaign_id, "pause", reason)


@campaign_app.command("resume")
def resume(campaign_id: CampaignId) -> None:
    """Continue from where the campaign was paused; later steps move by the paused time."""
    _signal(campaign_id, "resume")


@campaign_app.command("cancel")
def cancel(campaign_id: CampaignId, reason: Annotated[str | None, typer.Option(help="Why.")] = None) -> None:
    """Stop the campaign for good: everything pending becomes CANCELLED."""
    _signal(campaign_id, "cancel", reason)


@campaign_app.command("status")
def status(
    campaign_id: CampaignId,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Per-step counts from the database and the lifecycle state."""
    ctx = CliContext()
    report = load_report(ctx, campaign_id)
    if as_json:
        data = report.model_dump(mode="json") | {"totals": report.totals}
        ctx.console.print_json(json.dumps(data))
        return
    ctx.console.print(render_report(report))


def load_report(ctx: CliContext, campaign_id: int) -> CampaignReport:
    with ctx.sessions() as session:
        report = campaign_report(session, campaign_id)
    if report is None:
        raise UserError(f"campaign {campaign_id} does not exist")
    if report.status != CampaignStatus.DRAFT.value:

        async def workflow_status() -> str | None:
            try:
                client = await _client(ctx)
            except UserError:
                return None
            found = await client.workflow_status(campaign_id)
            return found.name if found else None

        report.workflow_status = _control(workflow_status)
    return report


def render_report(report: CampaignReport) -> Table:
    table = Table(
        title=f"Campaign {report.campaign_id} · {report.name} · {report.status}"
        f" · {report.enrolled} enrolled · workflow {report.workflow_status or '-'}"
    )
    for column in ("step", "channel", "starts", "scheduled", "sent", "skipped", "failed", "cancelled", "not planned"):
        table.add_column(column, justify="right" if column not in ("channel", "starts", "skipped") else "left")
    for step in report.steps:
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(step.skipped.items())) or "0"
        table.add_row(
            str(step.position),
            step.channel,
            step.start_at.strftime("%Y-%m-%d %H:%M:%S") if step.start_at else "-",
            str(step.scheduled + step.sending),
            str(step.sent),
            skipped,
            str(step.failed),
            str(step.cancelled),
            str(step.not_planned),
        )
    if report.dead_letters:
        table.caption = f"{report.dead_letters} dead letter(s)"
    return table
