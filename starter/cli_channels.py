"""`outbound senders add-gmail | inbound ... | secret-key | api`: real channels and hearing back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from db.engine import unit_of_work
from db.mailboxes import connect_gmail_mailbox, gmail_mailboxes
from db.models import MailboxSync
from starter.cli_contacts import senders_app
from starter.context import CliContext, UserError

inbound_app = typer.Typer(help="Replies, bounces and opt-outs coming back from mailboxes.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(inbound_app, name="inbound")
    app.command("secret-key")(secret_key)
    app.command("api")(api)


def secret_key() -> None:
    """Print a new key for OUTBOUND_SECRET_KEY (encrypts mailbox tokens, signs unsubscribe links)."""
    from runtime.secrets import new_secret_key

    CliContext().console.print(new_secret_key(), highlight=False, soft_wrap=True)


@senders_app.command("add-gmail")
def senders_add_gmail(
    address: Annotated[str, typer.Argument(help="The Gmail / Google Workspace mailbox address.")],
    credentials: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="Authorized-user JSON of the mailbox's OAuth grant (client_id, client_secret, refresh_token).",
        ),
    ],
    daily_limit: Annotated[int, typer.Option(min=1, help="Most emails per day from this mailbox.")] = 50,
    timezone: Annotated[str, typer.Option(help="IANA time zone in which the mailbox's day starts.")] = "UTC",
    verify: Annotated[bool, typer.Option(help="Check the grant against Gmail before storing it.")] = True,
    sync: Annotated[bool, typer.Option(help="Start the mailbox's inbound sync workflow.")] = True,
) -> None:
    """Connect a Gmail mailbox: its OAuth grant is stored encrypted, a revoked one is replaced."""
    from providers.stored_credentials import authorized_user_grant
    from runtime.secrets import SecretBox, SecretKeyInvalid, SecretKeyMissing

    ctx = CliContext()
    ctx.use_secret_key()
    try:
        info = json.loads(credentials.read_text())
        if not isinstance(info, dict):
            raise ValueError("the credentials file must hold a JSON object")
        grant = authorized_user_grant(info)
        box = SecretBox(ctx.settings.secret_key)
    except json.JSONDecodeError as error:
        raise UserError(f"{credentials}: not valid JSON ({error.msg}, line {error.lineno})") from None
    except (ValueError, SecretKeyMissing, SecretKeyInvalid) as error:
        raise UserError(f"{credentials}: {error}" if isinstance(error, ValueError) else str(error)) from None
    if verify:
        _verify_grant(ctx, address, grant)
    try:
        with unit_of_work(ctx.sessions) as session:
            sender = connect_gmail_mailbox(
                session,
                address=address,
                credentials_encrypted=box.encrypt(grant),
                daily_limit=daily_limit,
                timezone=timezone,
                now=datetime.now(UTC),
            )
            sender_id, stored_address = sender.id, sender.address
    except ValueError as error:
        raise UserError(str(error)) from None
    ctx.console.print(
        f"Mailbox {sender_id}: {stored_address} via gmail, {daily_limit}/day ({timezone}); grant stored encrypted",
        highlight=False,
    )
    if sync:
        _start_syncs(ctx, [sender_id])


def _verify_grant(ctx: CliContext, address: str, grant: dict[str, str]) -> None:
    """Refresh the token and read the profile once, so a wrong or revoked grant fails now."""
    from google.oauth2.credentials import Credentials

    from providers.base import ProviderError
    from providers.gmail_auth import oauth_credentials
    from providers.gmail_mailbox import GmailMailbox

    class _Once:
        def credentials(self, _address: str) -> Credentials:
            return oauth_credentials(
                client_id=grant["client_id"],
                client_secret=grant["client_secret"],
                refresh_token=grant["refresh_token"],
                settings=ctx.settings.gmail,
            )

    try:
        GmailMailbox(_Once(), ctx.settings.gmail).profile_history_id(address)
    except ProviderError as error:
        raise UserError(
            f"Gmail refused the grant for {address}: {error} (use --no-verify to store it anyway)"
        ) from None


def _start_syncs(ctx: CliContext, sender_ids: list[int]) -> None:
    from starter.asyncio_bridge import connect_or_explain, run
    from starter.client import OutboundClient

    async def go() -> list[str]:
        client = OutboundClient(await connect_or_explain(ctx.settings), ctx.settings.task_queue_prefix)
        interval = ctx.settings.gmail.sync_interval_seconds
        return [await client.start_mailbox_sync(sender_id, interval_seconds=interval) for sender_id in sender_ids]

    for workflow_id in run(go()):
        ctx.console.print(f"Inbound sync running as workflow [bold]{workflow_id}[/]", highlight=False)


@inbound_app.command("start")
def inbound_start() -> None:
    """Start the inbound sync of every active Gmail mailbox (running ones are left alone)."""
    ctx = CliContext()
    with ctx.sessions() as session:
        active = [sender_id for sender_id, _, status in gmail_mailboxes(session) if status == "active"]
    if not active:
        raise UserError("no active Gmail mailbox: connect one with `outbound senders add-gmail`")
    _start_syncs(ctx, active)


@inbound_app.command("status")
def inbound_status() -> None:
    """Each mailbox's sync cursor, last sync and last error."""
    ctx = CliContext()
    table = Table("Id", "Mailbox", "Status", "History id", "Last sync (UTC)", "Messages", "Last error")
    with ctx.sessions() as session:
        for sender_id, address, status in gmail_mailboxes(session):
            state = session.get(MailboxSync, sender_id)
            last = state.last_synced_at if state else None
            table.add_row(
                *(
                    Text(str(value))
                    for value in (
                        sender_id,
                        address,
                        status,
                        state.history_id if state and state.history_id else "-",
                        f"{last:%Y-%m-%d %H:%M:%S}" if last else "never",
                        state.messages_seen if state else 0,
                        (state.error or "")[:80] if state else "",
                    )
                )
            )
    ctx.console.print(table)


def api(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default OUTBOUND_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default OUTBOUND_API_PORT).")] = None,
) -> None:
    """Run the HTTP service: /health, /internal/status, Twilio webhooks, one-click unsubscribe."""
    from runtime.logs import configure_logging
    from starter.asyncio_bridge import run
    from workers.api.server import serve_api

    ctx = CliContext()
    configure_logging(ctx.settings.log_format)  # OUTBOUND_LOG_FORMAT=json for production
    _ = ctx.engine  # fail now, clearly, when the schema is missing
    ctx.jobs_file()  # a bad jobs file: a clear error now, not at the first request
    ctx.use_secret_key()
    run(serve_api(ctx.settings, host=host, port=port))
