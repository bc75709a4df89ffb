"""`outbound workspace show | set`: defaults every campaign of the workspace falls back to."""

from __future__ import annotations

from typing import Annotated

import typer

from db.engine import unit_of_work
from db.models import DEFAULT_WORKSPACE_ID, Workspace
from starter.context import CliContext, UserError

workspace_app = typer.Typer(help="Workspace defaults (the postal address emails show).", no_args_is_help=True)


@workspace_app.command("show")
def show() -> None:
    """Print the workspace's defaults."""
    ctx = CliContext()
    with ctx.sessions() as session:
        workspace = session.get_one(Workspace, DEFAULT_WORKSPACE_ID)
        address = workspace.postal_address
    ctx.console.print(f"Postal address: {address or '(none: email campaigns must give `postal_address:`)'}")


@workspace_app.command("set")
def set_defaults(
    postal_address: Annotated[
        str,
        typer.Option(help="The sender's physical postal address, shown in every email's footer (CAN-SPAM)."),
    ],
) -> None:
    """Set the defaults that campaign files may leave out."""
    address = " ".join(postal_address.split())
    if len(address) < 5:
        raise UserError("--postal-address must be a real postal address (street, city, postcode, country)")
    if len(address) > 500:
        raise UserError("--postal-address must be at most 500 characters")
    ctx = CliContext()
    with unit_of_work(ctx.sessions) as session:
        session.get_one(Workspace, DEFAULT_WORKSPACE_ID).postal_address = address
    ctx.console.print(f"Postal address for new email campaigns: {address}", highlight=False)
