"""The `outbound` command line."""

from __future__ import annotations

import os
import sys

import typer

from starter.context import CliContext, UserError

app = typer.Typer(
    name="outbound",
    help="Multi-step outreach campaigns (email, SMS, voicemail) as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from starter import cli_campaign, cli_channels, cli_contacts, cli_schedules, cli_system, cli_warmup

    app.add_typer(cli_contacts.contacts_app, name="contacts")
    app.add_typer(cli_contacts.suppress_app, name="suppress")
    app.add_typer(cli_contacts.senders_app, name="senders")
    app.add_typer(cli_campaign.campaign_app, name="campaign")
    from starter import cli_report

    cli_report.register(cli_campaign.campaign_app)  # `campaign report`
    from starter import cli_ai_texts

    cli_ai_texts.register(cli_campaign.campaign_app)  # `campaign generate | preview`
    from starter import cli_api_keys, cli_dlq, cli_jobs, cli_retention, cli_webhooks, cli_workspace

    app.add_typer(cli_dlq.dlq_app, name="dlq")
    app.add_typer(cli_retention.retention_app, name="retention")
    app.add_typer(cli_workspace.workspace_app, name="workspace")
    app.add_typer(cli_jobs.queues_app, name="queues")
    app.add_typer(cli_jobs.jobs_app, name="jobs")
    app.add_typer(cli_api_keys.api_keys_app, name="api-keys")
    app.add_typer(cli_webhooks.webhooks_app, name="webhooks")
    cli_system.register(app)
    cli_channels.register(app)
    cli_schedules.register(app)
    del cli_warmup  # imported for its `senders warmup` command


def main() -> None:
    """Run the CLI and exit hard: the Temporal client's runtime can crash at interpreter
    exit in short processes (sdk-python #300), so output is flushed and the process ends."""
    _register_commands()
    code = 0
    try:
        app(standalone_mode=False)
    except UserError as error:
        CliContext().err.print(f"[bold red]error:[/] {error}")
        code = 2
    except typer.Exit as done:
        code = done.exit_code
    except typer.Abort:
        code = 1
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except Exception as error:  # usage errors (click's exceptions, re-exported by typer)
        show = getattr(error, "show", None)
        if not callable(show):
            raise
        show()
        code = int(getattr(error, "exit_code", 2))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
