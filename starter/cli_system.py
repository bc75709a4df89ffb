"""`outbound config | db upgrade | worker | dev-server | demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.settings import DEFAULT_HOME
from starter.context import CliContext, UserError

if TYPE_CHECKING:
    from starter.shutdown import StopOnSigterm

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("config")(config)
    app.command("worker")(worker)
    app.command("dev-server")(dev_server)
    app.command("demo")(demo)
    app.command("contract")(contract)


def config() -> None:
    """Print the effective settings (from OUTBOUND_* variables), secrets masked."""
    ctx = CliContext()
    ctx.console.print_json(json.dumps(ctx.settings.masked()))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version (idempotent)."""
    from db.engine import make_engine
    from db.migrate import upgrade

    ctx = CliContext()
    engine = make_engine(ctx.settings.database_url)
    upgrade(engine)
    engine.dispose()
    ctx.console.print(f"Database is up to date: {ctx.settings.masked()['database_url']}")


def worker(
    task_queue: Annotated[
        list[str] | None, typer.Option("--task-queue", "-q", help="Poll only these queues (repeatable).")
    ] = None,
) -> None:
    """Run a worker for all task queues (or the given ones) until SIGINT/SIGTERM."""
    from runtime.logs import configure_logging
    from runtime.names import all_queues, job_queue
    from runtime.telemetry import TelemetryConfigError, Tracing
    from starter.asyncio_bridge import run
    from workers.run import run_worker

    ctx = CliContext()
    jobs = ctx.jobs_file()
    prefix = ctx.settings.task_queue_prefix
    known = all_queues(prefix) + [job_queue(queue.name, prefix) for queue in (jobs.queues if jobs else [])]
    unknown = [queue for queue in task_queue or [] if queue not in known]
    if unknown:
        raise UserError(f"unknown task queue(s) {unknown}; known: {known}")
    try:
        tracing = Tracing.from_environment("outbound-worker")
    except TelemetryConfigError as error:  # a bad OTEL_* value: say which, no traceback
        raise UserError(str(error)) from None
    configure_logging(ctx.settings.log_format)  # OUTBOUND_LOG_FORMAT=json for production
    ctx.engine  # noqa: B018 - fail early with a clear message when the schema is missing
    ctx.use_secret_key()
    from runtime.secrets import SecretKeyMissing
    from workers.worker import require_key_for_email

    try:
        require_key_for_email(ctx.settings, task_queue or known)
    except SecretKeyMissing as error:
        raise UserError(str(error)) from None
    run(run_worker(ctx.settings, task_queue or None, tracing=tracing))


def dev_server(
    port: Annotated[int, typer.Option(help="gRPC port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Web UI port.")] = 8233,
    home: Annotated[Path, typer.Option(help="Where the server keeps its database.")] = DEFAULT_HOME,
) -> None:
    """Run the local Temporal dev server (Web UI included) with Outbound's search attributes.

    Ctrl-C or SIGTERM stops it, at any moment, and exits 0 once the server is down."""
    from starter.devserver import start_dev_server, stop
    from starter.shutdown import StopOnSigterm

    ctx = CliContext()
    with StopOnSigterm() as shutdown:
        try:
            process = start_dev_server(home, port=port, ui_port=ui_port, namespace=ctx.settings.temporal_namespace)
            try:
                ctx.console.print(
                    f"Temporal dev server on 127.0.0.1:{port}, Web UI http://localhost:{ui_port} (Ctrl-C stops)"
                )
                _sync_schedules(ctx, port, shutdown)
                process.wait()
            finally:
                stop(process)
        except KeyboardInterrupt:
            pass


def _sync_schedules(ctx: CliContext, port: int, shutdown: StopOnSigterm) -> None:
    """The server starts with the search attributes registered; then the schedules go on it."""
    from runtime.temporal import connect
    from starter.cli_schedules import sync_for_dev

    settings = ctx.settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})

    async def go() -> None:
        await sync_for_dev(await connect(settings), settings, ctx.console)

    shutdown.run(go())


def demo(
    keep_running: Annotated[
        bool, typer.Option(help="Keep the dev server and worker up after the campaign, to explore the Web UI.")
    ] = False,
    home: Annotated[Path, typer.Option(help="Where the dev server keeps its database.")] = DEFAULT_HOME,
    ui_port: Annotated[
        int | None, typer.Option(help="Web UI port of the dev server it starts (default: gRPC port + 1000).")
    ] = None,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="Run the job platform's demo instead: a feature service and five jobs.")
    ] = False,
) -> None:
    """Run the sample 3-step campaign end to end on the embedded defaults (or, with --jobs,
    jobs delegated to the example feature service).

    Ctrl-C or SIGTERM stops it, and everything it started, at any moment (SIGTERM exits 0)."""
    from starter.demo import run_demo
    from starter.shutdown import StopOnSigterm

    ctx = CliContext()
    ctx.use_secret_key()
    with StopOnSigterm() as shutdown:
        if jobs:
            from starter.jobs_demo import run_jobs_demo

            code = shutdown.run(run_jobs_demo(ctx.settings, ctx.console, home=home, ui_port=ui_port))
        else:
            code = shutdown.run(
                run_demo(ctx.settings, ctx.console, keep_running=keep_running, home=home, ui_port=ui_port)
            )
    raise typer.Exit(code)


def contract(
    out: Annotated[Path, typer.Option(help="Folder to write one JSON Schema file per message into.")] = Path(
        "contract"
    ),
) -> None:
    """Export the app's contract: JSON Schema for the signal / input / query payloads, the
    webhook events and the job payloads, and the HTTP API's OpenAPI document."""
    from schemas.contract import json_schemas
    from workers.api.openapi import openapi_document

    ctx = CliContext()
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (out / f"{name}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
        ctx.console.print(f"wrote {out / (name + '.schema.json')}")
    (out / "openapi.json").write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
    ctx.console.print(f"wrote {out / 'openapi.json'}")
