"""`outbound senders warmup`: a new mailbox's daily limit climbs along a ramp.

The ramp is stored on the sender. Each send's quota claim takes the ramp's limit for the
sender's own calendar day, so a new day's limit holds from the sender's midnight in its
time zone; the hourly warmup schedule only keeps the stored figure current.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from db.engine import unit_of_work
from db.warmup import find_sender, sender_today, set_warmup
from domain.warmup import WarmupRamp, validate_ramp
from schemas.enums import Channel
from starter.cli_contacts import senders_app
from starter.context import CliContext, UserError


@senders_app.command("warmup")
def senders_warmup(
    address: Annotated[str, typer.Argument(help="The sender's mailbox address or E.164 number.")],
    channel: Annotated[Channel, typer.Option(help="The channel the sender is registered for.")] = Channel.EMAIL,
    start: Annotated[int | None, typer.Option(help="Daily limit on the first day.")] = None,
    increment: Annotated[int | None, typer.Option(help="How much the limit grows each day.")] = None,
    ceiling: Annotated[int | None, typer.Option(help="The limit the ramp stops at.")] = None,
    begin: Annotated[
        str | None, typer.Option(help="First day of the ramp, YYYY-MM-DD (default: today in the sender's time zone).")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop warming up; the limit stays where it is.")] = False,
) -> None:
    """Warm a sender up: `--start 10 --increment 5 --ceiling 50` sends 10, 15, 20 ... 50 a day."""
    ctx = CliContext()
    numbers = _ramp_numbers(start, increment, ceiling, begin, off)
    began_on = _parse_day(begin) if begin else None
    now = datetime.now(UTC)
    try:
        with unit_of_work(ctx.sessions) as session:
            sender = find_sender(session, channel, address)
            ramp = None
            if numbers is not None:
                first, step, top = numbers
                began_on = began_on or sender_today(sender, now)
                ramp = WarmupRamp(start=first, increment=step, ceiling=top, began_on=began_on)
            limit = set_warmup(session, sender, ramp, now)
            label = f"Sender {sender.id} ({sender.channel} {sender.address})"
    except (LookupError, ValueError) as error:
        raise UserError(str(error.args[0])) from None
    if ramp is None:
        ctx.console.print(f"{label}: warmup off; the daily limit stays {limit}", highlight=False)
        return
    ctx.console.print(
        f"{label} warms up {ramp.describe()}, reaching {ramp.ceiling} on {ramp.ceiling_reached_on().isoformat()};"
        f" today's limit: {limit}",
        highlight=False,
    )


def _ramp_numbers(
    start: int | None, increment: int | None, ceiling: int | None, begin: str | None, off: bool
) -> tuple[int, int, int] | None:
    """The checked (start, increment, ceiling), or None for --off; every problem at once."""
    if off:
        if any(value is not None for value in (start, increment, ceiling, begin)):
            raise UserError("--off takes no --start, --increment, --ceiling or --begin")
        return None
    if start is None or increment is None or ceiling is None:
        raise UserError("give --start, --increment and --ceiling (and optionally --begin), or --off")
    problems = validate_ramp(start, increment, ceiling)
    if problems:
        raise UserError("; ".join(problems))
    return start, increment, ceiling


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--begin: {text!r} is not a date in the form YYYY-MM-DD") from None
