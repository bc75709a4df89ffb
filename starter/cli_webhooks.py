"""`outbound webhooks ...`: the app's endpoints for events (DESIGN W1 to W3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from domain.durations import parse_seconds
from starter.cli_text import cells, utc_time
from starter.context import CliContext, UserError

webhooks_app = typer.Typer(help="Endpoints that hear events (signed webhooks), their deliveries, replay.",
                           no_args_is_help=True)  # fmt: skip


def _admin(ctx: CliContext, *, temporal: bool = False) -> Any:
    """The admin; with `temporal`, connected (adding and enabling start delivery)."""
    from starter.asyncio_bridge import connect_or_explain, run
    from starter.webhook_admin import WebhookAdmin

    ctx.use_secret_key()
    client = run(connect_or_explain(ctx.settings)) if temporal else None
    return WebhookAdmin(client, ctx.sessions, ctx.settings)


def _refused(error: Exception) -> UserError:
    return UserError(str(error))


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="Where events are POSTed (http or https).")],
    events: Annotated[
        str | None, typer.Option(help="Event types, comma-separated (contact.replied,message.sent); default: all.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the endpoint is for.")] = None,
) -> None:
    """Add an endpoint; prints its signing secret (`whsec_…`) this once."""
    from starter.asyncio_bridge import run
    from starter.webhook_admin import WebhookError

    ctx = CliContext()
    kinds = [kind.strip() for kind in (events or "").split(",") if kind.strip()]
    admin = _admin(ctx, temporal=True)
    try:
        added, secret = run(admin.add(url, kinds, description))
    except WebhookError as error:
        raise _refused(error) from None
    ctx.console.print(f"Endpoint {added.id} added: {added.url} ({', '.join(added.events) or 'every event'})",
                      highlight=False)  # fmt: skip
    ctx.console.print("Its signing secret, shown this once (verify with the standardwebhooks package):")
    ctx.console.print(secret, highlight=False, soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list(as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False) -> None:
    """Every endpoint: URL, events, status (and why it was disabled)."""
    ctx = CliContext()
    endpoints = _admin(ctx).all()
    if as_json:
        ctx.console.print_json(json.dumps([each.model_dump(mode="json") for each in endpoints]))
        return
    table = Table("Id", "URL", "Events", "Status", "Failing since", "Description")
    for each in endpoints:
        status = each.status + (f" ({each.disabled_reason})" if each.disabled_reason else "")
        failing = utc_time(each.failing_since) if each.failing_since else ""
        table.add_row(*cells(each.id, each.url, ", ".join(each.events) or "all", status, failing,
                             each.description or ""))  # fmt: skip
    ctx.console.print(table)


@webhooks_app.command("disable")
def webhooks_disable(endpoint: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """Stop delivering to an endpoint; events meanwhile wait for it (`enable`)."""
    from starter.webhook_admin import WebhookError

    ctx = CliContext()
    try:
        _admin(ctx).disable(endpoint)
    except WebhookError as error:
        raise _refused(error) from None
    ctx.console.print(f"Endpoint {endpoint} disabled")


@webhooks_app.command("enable")
def webhooks_enable(endpoint: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """Deliver again, from where the endpoint stopped."""
    from starter.asyncio_bridge import run
    from starter.webhook_admin import WebhookError

    ctx = CliContext()
    try:
        run(_admin(ctx, temporal=True).enable(endpoint))
    except WebhookError as error:
        raise _refused(error) from None
    ctx.console.print(f"Endpoint {endpoint} enabled")


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(endpoint: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """A new signing secret; the old one also signs until the grace period ends."""
    from starter.webhook_admin import WebhookError

    ctx = CliContext()
    try:
        secret, until = _admin(ctx).rotate_secret(endpoint)
    except WebhookError as error:
        raise _refused(error) from None
    ctx.console.print(f"New secret for endpoint {endpoint}; the old one also signs until {utc_time(until)}:")
    ctx.console.print(secret, highlight=False, soft_wrap=True)


@webhooks_app.command("test")
def webhooks_test(endpoint: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """Send a signed `webhook.ping` now and show the answer."""
    from starter.webhook_admin import WebhookError

    ctx = CliContext()
    try:
        status, elapsed, error = _admin(ctx).ping(endpoint)
    except WebhookError as problem:
        raise _refused(problem) from None
    if error is not None:
        raise UserError(f"endpoint {endpoint} did not accept the ping: {error} ({elapsed} ms)")
    ctx.console.print(f"Endpoint {endpoint} answered {status} in {elapsed} ms")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    endpoint: Annotated[int | None, typer.Option(help="One endpoint's deliveries.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only those whose last attempt failed.")] = False,
    event: Annotated[str | None, typer.Option(help="Only this event type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """Deliveries, newest first: state, attempts, last status code, latency, next attempt."""
    ctx = CliContext()
    rows = _admin(ctx).deliveries(endpoint_id=endpoint, failed=failed, event_type=event, limit=limit)
    if as_json:
        ctx.console.print_json(json.dumps([row.model_dump(mode="json") for row in rows]))
        return
    table = Table("Id", "Endpoint", "Event", "Type", "Status", "Attempts", "Last code", "Latency", "Error", "Next")
    for row in rows:
        table.add_row(
            *cells(row.id, row.endpoint_id, row.event_id, row.event_type, row.status, row.attempts,
                   row.last_status_code or "", f"{row.latency_ms} ms" if row.latency_ms is not None else "",
                   row.last_error or "", utc_time(row.next_attempt_at) if row.next_attempt_at else "")
        )  # fmt: skip
    ctx.console.print(table)


@webhooks_app.command("replay")
def webhooks_replay(
    event: Annotated[str | None, typer.Argument(help="An event id (evt_123): deliver it again.")] = None,
    endpoint: Annotated[int | None, typer.Option(help="Only to this endpoint.")] = None,
    since: Annotated[str | None, typer.Option(help="With --endpoint: everything since, e.g. 2h, 30m, 1d.")] = None,
) -> None:
    """Deliver again, with the same `webhook-id` (receivers dedupe on it)."""
    from starter.webhook_admin import WebhookError

    ctx = CliContext()
    after = datetime.now(UTC) - timedelta(seconds=_seconds(since)) if since else None
    try:
        count = _admin(ctx).replay(event=event, endpoint_id=endpoint, since=after)
    except WebhookError as error:
        raise _refused(error) from None
    ctx.console.print(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")


def _seconds(text: str) -> int:
    try:
        return parse_seconds(text)
    except ValueError as error:
        raise UserError(f"--since: {error}") from None
