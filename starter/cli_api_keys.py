"""`outbound api-keys create | list | revoke`: the bearer keys of the app's API (`/v1`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from db.api_keys import ApiKeyError, create_key, list_keys, revoke_key
from db.engine import unit_of_work
from starter.cli_text import utc_time
from starter.context import CliContext, UserError

api_keys_app = typer.Typer(help="Bearer keys for the app's HTTP API (/v1).", no_args_is_help=True)
KeyName = Annotated[str, typer.Argument(help="What the key is for, e.g. the app's name.")]


@api_keys_app.command("create")
def create(name: KeyName) -> None:
    """Make a key and print it once: only its hash is kept."""
    ctx = CliContext()
    try:
        with unit_of_work(ctx.sessions) as session:
            key = create_key(session, name, datetime.now(UTC))
    except ApiKeyError as error:
        raise UserError(str(error)) from None
    ctx.err.print(f"API key {name!r} (shown once; send it as `Authorization: Bearer <key>`):", highlight=False)
    ctx.console.print(key, highlight=False, soft_wrap=True)


@api_keys_app.command("list")
def list_command() -> None:
    """Every key: name, prefix, created, last used, revoked."""
    ctx = CliContext()
    with ctx.sessions() as session:
        keys = list_keys(session)
    table = Table("Name", "Key starts", "Created (UTC)", "Last used (UTC)", "Revoked (UTC)")
    for key in keys:
        table.add_row(*(Text(value) for value in (key.name, key.key_prefix + "…", utc_time(key.created_at),
                                                   utc_time(key.last_used_at), utc_time(key.revoked_at))))  # fmt: skip
    ctx.console.print(table)


@api_keys_app.command("revoke")
def revoke(name: KeyName) -> None:
    """Refuse the key from now on."""
    ctx = CliContext()
    try:
        with unit_of_work(ctx.sessions) as session:
            revoke_key(session, name, datetime.now(UTC))
    except ApiKeyError as error:
        raise UserError(str(error)) from None
    ctx.console.print(f"API key {name!r} revoked", highlight=False)
