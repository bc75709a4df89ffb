"""`outbound dlq ...`: list, show, retry and discard dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from db.dead_letters import (
    DeadLetterDetail,
    DeadLetterError,
    discard,
    list_dead_letters,
    require_dead_letter,
    retry_refusal,
)
from db.engine import unit_of_work
from db.job_dead_letters import JobLetter, close_job_letters, job_letter, list_job_letters
from schemas.dead_letter_io import DeadLetterStatus
from starter.cli_text import cells, utc_time
from starter.context import CliContext, UserError

if TYPE_CHECKING:
    from schemas.dead_letter_io import DeadLetterRetryResult

dlq_app = typer.Typer(help="Executions that failed for good: inspect, retry or discard them.", no_args_is_help=True)

LetterId = Annotated[int, typer.Argument(help="The dead letter's id (from `dlq list`).")]


@dlq_app.command("list")
def list_command(
    campaign: Annotated[int | None, typer.Option("--campaign", help="Only this campaign's letters.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also resolved and discarded letters.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
) -> None:
    """Open dead letters (waiting for an operator), newest first."""
    ctx = CliContext()
    with ctx.sessions() as session:
        letters = list_dead_letters(session, campaign_id=campaign, include_closed=show_all, limit=limit)
        job_letters = [] if campaign is not None else list_job_letters(session, include_closed=show_all, limit=limit)
    if not letters and not job_letters:
        ctx.err.print("No dead letters" + ("" if show_all else " open") + ".")
        return
    if job_letters:
        _print_job_letters(ctx, job_letters)
    if not letters:
        return
    table = Table(title="Dead letters")
    for column in ("id", "campaign", "step", "channel", "contact", "error type", "attempts", "status", "created"):
        table.add_column(
            column, justify="right" if column in ("id", "campaign", "step", "contact", "attempts") else "left"
        )
    for letter in letters:
        table.add_row(
            str(letter.id),
            str(letter.campaign_id),
            str(letter.step_position),
            letter.channel,
            str(letter.contact_id),
            letter.error_type,
            str(letter.attempts),
            letter.status,
            utc_time(letter.created_at),
        )
    ctx.console.print(table)


def _print_job_letters(ctx: CliContext, letters: list[JobLetter]) -> None:
    table = Table("id", "queue", "job id", "job status", "error type", "attempts", "status", "created")
    table.title = "Dead letters of jobs"
    for letter in letters:
        table.add_row(
            *cells(letter.id, letter.queue, letter.job_key, letter.job_status, letter.error_type, letter.attempts),
            *cells(letter.status, utc_time(letter.created_at)),
        )
    ctx.console.print(table)


@dlq_app.command("show")
def show(dead_letter_id: LetterId) -> None:
    """The error, the execution's state and the campaign of one dead letter (or its job)."""
    ctx = CliContext()
    with ctx.sessions() as session:
        letter = job_letter(session, dead_letter_id)
        if letter is not None:
            ctx.console.print(_render_job_letter(letter))
            return
        detail = _require(session, dead_letter_id)
    ctx.console.print(_render(detail))


def _render_job_letter(letter: JobLetter) -> Table:
    table = Table(title=f"Dead letter {letter.id} · {letter.status}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in (
        ("job", f"{letter.queue}/{letter.job_key} · {letter.job_status} (`outbound jobs show {letter.job_id}`)"),
        ("error type", letter.error_type),
        ("error", letter.error or "(purged by retention)"),
        ("attempts", str(letter.attempts)),
        ("why retries stopped", letter.retry_state or "-"),
        ("created", utc_time(letter.created_at)),
        ("resolved", utc_time(letter.resolved_at)),
    ):
        table.add_row(name, Text(value))
    return table


def _render(detail: DeadLetterDetail) -> Table:
    letter = detail.summary
    table = Table(title=f"Dead letter {letter.id} · {letter.status}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("error type", letter.error_type),
        ("error", detail.error or "(purged by retention)"),
        ("attempts", str(letter.attempts)),
        ("created", utc_time(letter.created_at)),
        ("resolved", utc_time(detail.resolved_at)),
        ("campaign", f"{letter.campaign_id} · {detail.campaign_name} · {detail.campaign_status}"),
        ("step", f"{letter.step_position} ({letter.channel})"),
        ("contact", str(letter.contact_id)),
        ("execution", f"{letter.execution_id} · {detail.execution_status} · {detail.execution_attempts} attempt(s)"),
    ]
    if detail.skip_reason:
        rows.append(("skip reason", detail.skip_reason))
    if detail.sent_at:
        rows.append(("sent", utc_time(detail.sent_at)))
    if detail.execution_error and detail.execution_error != f"{letter.error_type}: {detail.error}":
        rows.append(("execution error", detail.execution_error))
    for name, value in rows:
        table.add_row(name, value)
    return table


@dlq_app.command("discard")
def discard_command(dead_letter_id: LetterId) -> None:
    """Close an open dead letter without sending; its execution stays FAILED."""
    ctx = CliContext()
    try:
        with unit_of_work(ctx.sessions) as session:
            letter = job_letter(session, dead_letter_id)
            if letter is not None:
                if letter.status != DeadLetterStatus.OPEN.value:
                    raise DeadLetterError(
                        f"dead letter {dead_letter_id} is {letter.status}; only an open one is discarded"
                    )
                close_job_letters(session, letter.job_id, DeadLetterStatus.DISCARDED, datetime.now(UTC))
            else:
                discard(session, dead_letter_id, datetime.now(UTC))
    except DeadLetterError as error:
        raise UserError(str(error)) from None
    ctx.console.print(f"Discarded dead letter {dead_letter_id}")


@dlq_app.command("retry")
def retry(
    dead_letter_id: LetterId,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the outcome (default) or return at once.")
    ] = True,
) -> None:
    """Send the execution again through the normal guarded path, in its own workflow
    (`dlq-retry-ID`); a contact who replied since is skipped, not sent."""
    ctx = CliContext()
    with ctx.sessions() as session:
        letter = job_letter(session, dead_letter_id)
        refusal = None if letter is not None else retry_refusal(_require(session, dead_letter_id))
    if letter is not None:
        _retry_job_letter(ctx, letter)
        return
    if refusal:
        raise UserError(refusal)
    from starter.asyncio_bridge import run

    workflow_id, result = run(_start(ctx, dead_letter_id, wait))
    if result is None:
        ctx.console.print(f"Retrying dead letter {dead_letter_id} as workflow [bold]{workflow_id}[/]")
        return
    outcome = result.outcome.value if result.outcome else "-"
    ctx.console.print(
        f"Dead letter {dead_letter_id}: execution {result.execution_id} {result.execution_status.value}"
        f" (send {outcome}{', ' + result.detail if result.detail else ''}); letter {result.letter_status.value}"
    )
    if result.letter_status.value == "open":
        raise typer.Exit(1)


def _retry_job_letter(ctx: CliContext, letter: JobLetter) -> None:
    """A job's letter is retried by running the job again under its id (`jobs retry`)."""
    from starter.asyncio_bridge import connect_or_explain, run
    from starter.job_producer import JobError, JobProducer

    if letter.status != DeadLetterStatus.OPEN.value:
        raise UserError(f"dead letter {letter.id} is {letter.status}; only an open one is retried")
    jobs = ctx.jobs_file()

    async def go() -> None:
        client = await connect_or_explain(ctx.settings)
        await JobProducer(client, ctx.sessions, jobs, ctx.settings.task_queue_prefix).retry(str(letter.job_id))

    try:
        run(go())
    except JobError as error:
        raise UserError(str(error)) from None
    ctx.console.print(f"Dead letter {letter.id}: job {letter.queue}/{letter.job_key} runs again; letter resolved")


async def _start(ctx: CliContext, dead_letter_id: int, wait: bool) -> tuple[str, DeadLetterRetryResult | None]:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import TemporalError

    from starter.asyncio_bridge import connect_or_explain
    from starter.dead_letter_client import DeadLetterRetryRefused, start_dead_letter_retry

    client = await connect_or_explain(ctx.settings)
    try:
        handle = await start_dead_letter_retry(client, dead_letter_id, prefix=ctx.settings.task_queue_prefix)
    except DeadLetterRetryRefused as error:
        raise UserError(str(error)) from None
    if not wait:
        return handle.id, None
    try:
        result = await handle.result()
    except WorkflowFailureError as error:
        cause: BaseException = error
        while isinstance(cause, TemporalError) and cause.cause is not None:
            cause = cause.cause  # the activity's refusal, under the activity error
        raise UserError(f"retry of dead letter {dead_letter_id} failed: {cause}") from None
    return handle.id, result


def _require(session: Session, dead_letter_id: int) -> DeadLetterDetail:
    try:
        return require_dead_letter(session, dead_letter_id)
    except DeadLetterError as error:
        raise UserError(str(error)) from None
