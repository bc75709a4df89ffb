"""`outbound campaign generate | preview`: the `{{ ai.<name> }}` texts a model writes per
contact, written before launch and read as the contact would get them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel

from starter.context import CliContext, UserError

if TYPE_CHECKING:
    from db.preview import WrittenBy


def register(campaign_app: typer.Typer) -> None:
    campaign_app.command("generate")(generate)
    campaign_app.command("preview")(preview)


def generate(
    campaign_id: Annotated[int, typer.Argument(help="The campaign id printed by `campaign create`.")],
    contact: Annotated[str | None, typer.Option(help="Only this contact (email address).")] = None,
) -> None:
    """Have the model write the campaign's `ai:` texts for its contacts now (a bulk job on the
    `ai` queue), so `campaign preview` shows them before launch. Launch writes what is missing."""
    from starter.cli_contacts import run_contacts_job
    from starter.contact_jobs import enqueue_writing

    ctx = CliContext()
    enqueued = run_contacts_job(
        ctx, lambda client: enqueue_writing(client, ctx.sessions, ctx.settings, campaign_id=campaign_id, email=contact)
    )
    if enqueued.job is None:
        ctx.console.print("Every contact has its texts already: nothing to write.")
        return
    ctx.console.print(
        f"Writing the ai texts of {enqueued.contacts:,} contact(s): bulk job {enqueued.job.id} on queue"
        f" {enqueued.job.queue} (`outbound jobs show {enqueued.job.id}`)",
        highlight=False,
    )


def preview(
    campaign_id: Annotated[int, typer.Argument(help="The campaign id printed by `campaign create`.")],
    contact: Annotated[str, typer.Option(help="The contact (email address) to render the steps for.")],
) -> None:
    """Every step as this contact would get it, with the texts the model wrote (or the
    defaults that stand in for them)."""
    from db.preview import PreviewError, preview_steps

    ctx = CliContext()
    with ctx.sessions() as session:
        try:
            shown = preview_steps(session, campaign_id, contact)
        except PreviewError as error:
            raise UserError(str(error)) from None
    for name, (text, written) in shown.ai.items():
        origin = _written_by(written) if written else "the default (nothing written)"
        ctx.console.print(f"[bold]ai.{name}[/] ({escape(origin)}): {escape(text)}", highlight=False)
    for step in shown.steps:
        title = f"step {step.position} · {step.channel}" + (f" · {escape(step.subject)}" if step.subject else "")
        ctx.console.print(Panel(escape(step.text), title=title, title_align="left"))


def _written_by(call: WrittenBy) -> str:
    """`written by gpt-4o-mini, 120+30 tokens, 850 ms`: what the text cost, beside it."""
    latency = f", {call.latency_ms:,} ms" if call.latency_ms is not None else ""
    return f"written by {call.model}, {call.prompt_tokens:,}+{call.completion_tokens:,} tokens{latency}"
