"""`outbound contacts | suppress | senders`: the data a campaign is built from.

Results go to stdout (tables a person reads); progress and per-row problems go to
stderr, so `outbound contacts list > file` stays clean.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

if TYPE_CHECKING:
    from temporalio.client import Client

    from starter.contact_jobs import ContactsEnqueued
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from db.contacts_repo import (
    KNOWN_PROVIDERS,
    ImportResult,
    add_sender,
    add_suppression,
    count_contacts,
    find_contact_by_email,
    find_contact_by_phone,
    import_contacts,
    list_contacts,
    list_senders,
    list_suppressions,
    stop_contact,
)
from db.engine import unit_of_work
from db.models import Contact, Sender
from db.warmup import sender_ramp
from domain.contacts_csv import ContactCsv, ContactRecord, CsvFileError, RowError, open_contacts_csv
from schemas.enums import Channel, SkipReason
from starter.cli_text import cells
from starter.context import CliContext, UserError

contacts_app = typer.Typer(help="Import, list and stop contacts.", no_args_is_help=True)
suppress_app = typer.Typer(help="Addresses, numbers and domains never to contact.", no_args_is_help=True)
senders_app = typer.Typer(help="Mailboxes and phone numbers that send.", no_args_is_help=True)

PROGRESS_FROM_BYTES = 256 * 1024  # smaller files import before a bar would be seen
SHOWN_ROW_ERRORS = 50


@dataclass
class _Tally:
    """Rows seen while streaming a CSV; keeps only the first few errors in memory."""

    valid: int = 0
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)

    def valid_rows(self, rows: ContactCsv, advance: Callable[[int], None]) -> Iterator[ContactRecord]:
        for row in rows:
            advance(row.line)
            if isinstance(row, RowError):
                self.invalid += 1
                if len(self.errors) < SHOWN_ROW_ERRORS:
                    self.errors.append(row)
            else:
                self.valid += 1
                yield row


class _NothingValid(Exception):
    """Raised inside the transaction so an import with no valid row writes nothing."""


@contacts_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV with a header row: email, phone, first_name, ... (UTF-8).")],
    group: Annotated[str, typer.Option("--group", "-g", help="Lead group to add the contacts to (created if new).")],
    default_region: Annotated[
        str,
        typer.Option(help="Country for phone numbers written without +country code.", envvar="OUTBOUND_DEFAULT_REGION"),
    ] = "US",
    verify: Annotated[
        bool, typer.Option("--verify", help="Then verify the group's email addresses not verified in 30 days.")
    ] = False,
) -> None:
    """Import contacts from a CSV into a lead group; re-importing updates, never duplicates.

    Bad rows are reported by line number and skipped. Extra columns become template variables.
    """
    ctx = CliContext()
    tally = _Tally()
    try:
        result = _import(ctx, file, group, default_region, tally)
    except CsvFileError as error:
        raise UserError(f"{file}: {error}") from None
    except ValueError as error:
        raise UserError(str(error)) from None
    for problem in tally.errors:
        ctx.err.print(f"[yellow]{escape(str(file))}:{problem.line}:[/] {escape(problem.message)}", highlight=False)
    if tally.invalid > len(tally.errors):
        ctx.err.print(f"[yellow]… and {tally.invalid - len(tally.errors)} more bad rows[/]")
    if result is None:
        raise UserError(f"{file}: no valid contact rows ({tally.invalid} bad); nothing was imported")
    ctx.console.print(f"Imported {escape(file.name)} into lead group {escape(repr(group))}:", highlight=False)
    ctx.console.print(_summary(tally, result))
    if verify:
        _verify(ctx, group, DEFAULT_VERIFIED_WITHIN)


DEFAULT_VERIFIED_WITHIN = "30d"


@contacts_app.command("verify")
def verify_(
    group: Annotated[str, typer.Option("--group", "-g", help="The lead group whose addresses to verify.")],
    older_than: Annotated[
        str, typer.Option(help="Verify again addresses last verified longer ago than this (e.g. 7d, 12h).")
    ] = DEFAULT_VERIFIED_WITHIN,
    all_: Annotated[bool, typer.Option("--all", help="Verify every address of the group again.")] = False,
) -> None:
    """Verify the group's email addresses (syntax, DNS, disposable and role addresses) as a
    bulk job on the `verify-email` queue; `contacts list` shows each verdict."""
    _verify(CliContext(), group, None if all_ else older_than)


def _verify(ctx: CliContext, group: str, older_than: str | None) -> None:
    from datetime import timedelta

    from domain.durations import parse_seconds
    from starter.contact_jobs import enqueue_verification

    try:
        age = timedelta(seconds=parse_seconds(older_than)) if older_than is not None else None
    except ValueError as error:
        raise UserError(f"--older-than: {error}") from None
    enqueued = run_contacts_job(
        ctx,
        lambda client: enqueue_verification(
            client, ctx.sessions, ctx.settings, group=group, older_than=age, now=datetime.now(UTC)
        ),
    )
    if enqueued.job is None:
        ctx.console.print(f"Every address in {group!r} was verified within {older_than}: nothing to verify.")
        return
    ctx.console.print(
        f"Verifying {enqueued.contacts:,} address(es) of {group!r}: bulk job {enqueued.job.id} on queue"
        f" {enqueued.job.queue} (`outbound jobs show {enqueued.job.id}`; `outbound contacts list -g {group}`)",
        highlight=False,
    )


def _import(ctx: CliContext, file: Path, group: str, region: str, tally: _Tally) -> ImportResult | None:
    try:
        with (
            open_contacts_csv(file, default_region=region) as rows,
            _progress(ctx, file) as advance,
            unit_of_work(ctx.sessions) as session,
        ):
            result = import_contacts(session, tally.valid_rows(rows, advance), group, datetime.now(UTC))
            if tally.valid == 0:
                raise _NothingValid
            return result
    except _NothingValid:
        return None


@contextmanager
def _progress(ctx: CliContext, file: Path) -> Iterator[Callable[[int], None]]:
    """A transient bar on stderr for large files, advanced by the CSV line reached."""
    size = file.stat().st_size if file.is_file() else 0
    if size < PROGRESS_FROM_BYTES:
        yield lambda _line: None
        return
    with file.open("rb") as raw:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: raw.read(1 << 20), b""))
    columns = (TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"), TimeElapsedColumn())
    with Progress(*columns, console=ctx.err, transient=True) as progress:
        task = progress.add_task("import", total=max(lines, 1))
        yield lambda line: progress.update(task, completed=line)


def _summary(tally: _Tally, result: ImportResult) -> Table:
    table = Table(show_header=False)
    table.add_column("What")
    table.add_column("Count", justify="right")
    for label, count in (
        ("valid rows", tally.valid),
        ("bad rows (skipped)", tally.invalid),
        ("new contacts", result.inserted),
        ("updated contacts", result.updated),
        ("added to the group", result.group_members_added),
    ):
        table.add_row(label, f"{count:,}")
    return table


@contacts_app.command("mark-replied")
def mark_replied(
    contact: Annotated[str, typer.Argument(help="The contact's email address (or phone number).")],
) -> None:
    """Record a reply: stops the contact in every campaign; pending messages are skipped."""
    ctx = CliContext()
    with unit_of_work(ctx.sessions) as session:
        by_email = "@" in contact
        found = find_contact_by_email(session, contact) if by_email else find_contact_by_phone(session, contact)
        if found is None:
            raise UserError(f"no contact with {'email' if by_email else 'phone'} {contact!r}")
        earlier = found.stopped_reason
        skipped = stop_contact(session, found.id, SkipReason.REPLIED, datetime.now(UTC), source="cli")
    note = f" (already stopped: {earlier})" if earlier else ""
    ctx.console.print(f"Contact {found.id} marked as replied{note}: {skipped} pending message(s) stopped.")


@contacts_app.command("list")
def list_(
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only contacts of this lead group.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many contacts to show (oldest first).")] = 20,
) -> None:
    """Show contacts (oldest first) with their stop status."""
    ctx = CliContext()
    with ctx.sessions() as session:
        try:
            total = count_contacts(session, group_name=group)
            contacts = list_contacts(session, group_name=group, limit=limit)
        except LookupError as error:
            raise UserError(str(error.args[0])) from None
    table = Table("Id", "Email", "Phone", "Name", "Company", "Time zone", "Email status", "Checked (UTC)", "Stopped",
                  title_justify="left")  # fmt: skip
    for column in table.columns[1:3]:
        column.overflow = "fold"  # an address cut to "ann.le…" is useless
    table.title = f"Contacts{f' in {group!r}' if group else ''}: {len(contacts)} of {total:,}"
    for contact in contacts:
        name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
        table.add_row(
            *cells(contact.id, contact.email, contact.phone, name, contact.company, contact.timezone),
            *cells(_email_status(contact), _checked_at(contact), contact.stopped_reason),
        )
    ctx.console.print(table)


@contacts_app.command("enrich")
def enrich_(
    group: Annotated[str, typer.Option("--group", "-g", help="The lead group whose contacts to enrich.")],
    provider: Annotated[str, typer.Option(help="The enrichment provider: a queue of the jobs file, handler enrich.")],
) -> None:
    """Ask an enrichment provider about every contact of the group (a bulk job, under the
    queue's rate limit); what it knows becomes contact fields and template variables."""
    from starter.contact_jobs import enqueue_enrichment

    ctx = CliContext()
    enqueued = run_contacts_job(
        ctx, lambda client: enqueue_enrichment(client, ctx.sessions, ctx.settings, group=group, provider=provider)
    )
    if enqueued.job is None:
        ctx.console.print(f"{group!r} has no contacts: nothing to enrich.")
        return
    ctx.console.print(
        f"Enriching {enqueued.contacts:,} contact(s) of {group!r} from {provider}: bulk job {enqueued.job.id}"
        f" (`outbound jobs show {enqueued.job.id}`)",
        highlight=False,
    )


def run_contacts_job(
    ctx: CliContext, start: Callable[[Client], Coroutine[Any, Any, ContactsEnqueued]]
) -> ContactsEnqueued:
    """Connect to Temporal and enqueue a job over contacts; what it refuses (no such group,
    campaign or queue) is the user's to fix, not a traceback."""
    from starter.asyncio_bridge import connect_or_explain, run
    from starter.job_producer import JobError

    client = run(connect_or_explain(ctx.settings))
    try:
        return run(start(client))
    except (LookupError, JobError) as error:
        raise UserError(str(error.args[0])) from None


def _email_status(contact: Contact) -> str | None:
    """`risky (role_address)`; nothing until a verification ran."""
    if contact.email_status is None:
        return None
    reasons = ", ".join(contact.email_reasons or [])
    return f"{contact.email_status} ({reasons})" if reasons else contact.email_status


def _checked_at(contact: Contact) -> str | None:
    """When the verdict was reached: a months-old `deliverable` says less than today's."""
    return f"{contact.email_checked_at:%Y-%m-%d %H:%M}" if contact.email_checked_at else None


@suppress_app.command("add")
def suppress_add(
    value: Annotated[str, typer.Argument(help="An email, a phone number or a whole domain as @example.com.")],
    reason: Annotated[str, typer.Option(help="Why (e.g. 'asked not to be contacted').")] = "added from the CLI",
) -> None:
    """Never contact this address, number or domain again, in any campaign (idempotent)."""
    ctx = CliContext()
    try:
        with unit_of_work(ctx.sessions) as session:
            row = add_suppression(session, value, reason, datetime.now(UTC))
            kind, stored, kept_reason = row.kind, row.value, row.reason
    except ValueError as error:
        raise UserError(str(error)) from None
    ctx.console.print(f"Suppressed {kind} [bold]{escape(stored)}[/] ({escape(kept_reason)})", highlight=False)


@suppress_app.command("list")
def suppress_list() -> None:
    """Show every suppressed email, phone number and domain."""
    ctx = CliContext()
    with ctx.sessions() as session:
        rows = list_suppressions(session)
    table = Table("Kind", "Value", "Reason", "Added (UTC)", title=f"Suppressions: {len(rows)}", title_justify="left")
    for row in rows:
        table.add_row(*cells(row.kind, row.value, row.reason, f"{row.created_at:%Y-%m-%d %H:%M}"))
    ctx.console.print(table)


@senders_app.command("add")
def senders_add(
    channel: Annotated[Channel, typer.Option(help="What this sender sends.")],
    address: Annotated[str, typer.Option(help="Mailbox address (email) or E.164 number (sms, voicemail).")],
    daily_limit: Annotated[int, typer.Option(min=1, help="Most messages per day, in the sender's time zone.")],
    provider: Annotated[
        str, typer.Option(help=f"Delivery provider ({', '.join(sorted(KNOWN_PROVIDERS))}).")
    ] = "outbox",
    timezone: Annotated[str, typer.Option(help="IANA time zone in which the sender's day starts.")] = "UTC",
) -> None:
    """Register a sender, or update its limit/provider/time zone if it exists."""
    ctx = CliContext()
    try:
        with unit_of_work(ctx.sessions) as session:
            sender = add_sender(session, channel, address, provider, daily_limit, timezone, datetime.now(UTC))
    except ValueError as error:
        raise UserError(str(error)) from None
    ctx.console.print(
        f"Sender {sender.id}: {sender.channel} {sender.address} via {sender.provider},"
        f" {sender.daily_limit}/day ({sender.timezone})",
        highlight=False,
    )


@senders_app.command("list")
def senders_list() -> None:
    """Show the registered senders and today's usage."""
    ctx = CliContext()
    with ctx.sessions() as session:
        senders = list_senders(session)
    table = Table("Id", "Channel", "Address", "Provider", "Daily limit", "Sent today", "Time zone", "Status", "Warmup")
    table.title, table.title_justify = f"Senders: {len(senders)}", "left"
    for sender in senders:
        today = datetime.now(ZoneInfo(sender.timezone)).date()
        sent_today = sender.sends_today if sender.quota_day == today else 0
        ramp = sender_ramp(sender)
        limit = ramp.limit_on(today) if ramp else sender.daily_limit
        table.add_row(
            *cells(sender.id, sender.channel, sender.address, sender.provider, limit),
            *cells(sent_today, sender.timezone, _status(sender), _warmup(sender)),
        )
    ctx.console.print(table)


def _status(sender: Sender) -> str:
    """The sender's status, with a pause after repeated rate limits or 5xx while it lasts."""
    if sender.paused_until is not None and sender.paused_until > datetime.now(UTC):
        return f"{sender.status}, paused until {sender.paused_until:%Y-%m-%d %H:%M} UTC"
    return sender.status


def _warmup(sender: Sender) -> str:
    """The ramp and the limit it gives on the sender's own today."""
    ramp = sender_ramp(sender)
    if ramp is None:
        return ""
    return f"{ramp.describe()}; today {ramp.limit_on(datetime.now(ZoneInfo(sender.timezone)).date())}"
