"""`outbound queues ...` and `outbound jobs ...`: the job platform from the command line
(DESIGN J1 to J6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from domain.durations import parse_seconds
from schemas.jobs import JobStatus, JobView
from starter.cli_text import cells, utc_time
from starter.context import CliContext, UserError

queues_app = typer.Typer(help="Job queues declared in OUTBOUND_JOBS_FILE.", no_args_is_help=True)
jobs_app = typer.Typer(help="Add, inspect, cancel and retry jobs.", no_args_is_help=True)


@queues_app.command("list")
def queues_list() -> None:
    """Each queue: handler, endpoint, slots, rate limit, timeout, attempts, priority."""
    ctx = CliContext()
    jobs = ctx.jobs_file()
    table = Table("Queue", "Handler", "Endpoint", "Slots", "Rate limit", "Timeout", "Attempts", "Priority")
    for queue in jobs.queues:
        rate = f"{queue.rate_limit:g}/s" if queue.rate_limit else "none"
        table.add_row(
            *cells(queue.name, queue.handler, queue.endpoint or "", queue.slots, rate, queue.timeout),
            *cells(queue.attempts, queue.priority),
        )
    ctx.console.print(table)


@queues_app.command("stats")
def queues_stats(as_json: Annotated[bool, typer.Option("--json", help="The counts as JSON.")] = False) -> None:
    """Jobs per queue and state (waiting, delayed, active, completed, failed, cancelled)."""
    from db.jobs import queue_counts

    ctx = CliContext()
    jobs = ctx.jobs_file()
    with ctx.sessions() as session:
        counts = queue_counts(session, [queue.name for queue in jobs.queues] if jobs else [])
    if as_json:
        ctx.console.print_json(json.dumps(counts))
        return
    table = Table("Queue", *(state.value for state in JobStatus))
    for name, by_state in counts.items():
        table.add_row(*cells(name, *by_state.values()))
    ctx.console.print(table)


@queues_app.command("secret")
def queues_secret(
    queue: Annotated[str, typer.Argument(help="The queue whose feature service verifies requests.")],
) -> None:
    """Print the queue's signing secret (`whsec_…`) for its feature service's Standard Webhooks check."""
    from runtime.job_queues import queue_secret

    ctx = CliContext()
    jobs = ctx.jobs_file()
    try:
        jobs.queue(queue)
    except LookupError as error:
        raise UserError(str(error)) from None
    ctx.use_secret_key()
    ctx.console.print(queue_secret(ctx.settings, queue), highlight=False, soft_wrap=True)


@jobs_app.command("add")
def jobs_add(
    queue: Annotated[str, typer.Argument(help="The queue (see `outbound queues list`).")],
    data: Annotated[str, typer.Option(help="The job's data: a JSON object, or @file.json.")] = "{}",
    name: Annotated[str | None, typer.Option(help="The job's name (what kind of job it is).")] = None,
    job_id: Annotated[
        str | None, typer.Option("--id", help="Your id for the job: the same id twice is one job.")
    ] = None,
    delay: Annotated[str | None, typer.Option(help="Start no sooner than this from now, e.g. 30s, 5m, 2h.")] = None,
    priority: Annotated[
        int | None, typer.Option(min=1, max=5, help="1 (first) to 5 (last); default: the queue's.")
    ] = None,
    attempts: Annotated[int | None, typer.Option(min=1, max=100, help="Attempts; default: the queue's.")] = None,
) -> None:
    """Enqueue a job; prints its id (and says so when the id already names a job)."""
    from starter.asyncio_bridge import run
    from starter.job_producer import JobError

    ctx = CliContext()
    payload = _data(data)
    delay_seconds = _delay(delay)

    async def go() -> Any:
        producer = await _producer(ctx)
        return await producer.add(
            queue, payload, name=name, job_key=job_id, delay_seconds=delay_seconds, priority=priority, attempts=attempts
        )

    try:
        enqueued = run(go())
    except JobError as error:
        raise UserError(str(error)) from None
    job = enqueued.job
    if enqueued.created:
        when = f", starts after {job.run_after:%Y-%m-%d %H:%M:%S} UTC" if job.run_after else ""
        ctx.console.print(f"Job {job.job_key} added to queue {job.queue} (row {job.id}{when})", highlight=False)
    else:
        ctx.console.print(
            f"Job {job.job_key} already exists in queue {job.queue}: {job.status.value}, "
            f"{job.attempts_made} of {job.attempts_allowed} attempts made (row {job.id})",
            highlight=False,
        )


@jobs_app.command("add-bulk")
def jobs_add_bulk(
    queue: Annotated[str, typer.Argument(help="The queue (see `outbound queues list`).")],
    items: Annotated[str, typer.Option(help="A JSON Lines file (one JSON object per line), or - for stdin.")],
    name: Annotated[str | None, typer.Option(help="The job's name (what kind of job it is).")] = None,
    job_id: Annotated[str | None, typer.Option("--id", help="Your job id: the same id twice is one job.")] = None,
    window: Annotated[int, typer.Option(min=1, max=1000, help="Items in flight at once.")] = 100,
    batch: Annotated[
        int | None, typer.Option(min=1, max=100, help="Items per activity (default 10, at most the window).")
    ] = None,
) -> None:
    """One job over many items, each run (and retried) on its own; prints the job id."""
    from starter.asyncio_bridge import run
    from starter.job_producer import JobError

    ctx = CliContext()
    payload = _items(items)

    async def go() -> Any:
        producer = await _producer(ctx)
        return await producer.add_bulk(queue, payload, name=name, job_key=job_id, window=window, batch=batch)

    try:
        enqueued = run(go())
    except JobError as error:
        raise UserError(str(error)) from None
    job = enqueued.job
    verb = "added to" if enqueued.created else "already exists in"
    ctx.console.print(f"Bulk job {job.job_key} ({job.items:,} items) {verb} queue {job.queue} (row {job.id})")


def _item_line(job: JobView) -> str:
    counts = ", ".join(f"{count:,} {state}" for state, count in (job.item_counts or {}).items())
    return f"Items: {job.items or 0:,} ({counts})"


def _items(source: str) -> list[dict[str, Any]]:
    """Every line a JSON object; any bad line refuses the whole file, naming the lines."""
    import sys

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read {source}: {error.strerror or error}") from None
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not valid JSON ({error.msg})")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {number}: a JSON object is expected, not {type(item).__name__}")
            continue
        items.append(item)
    if problems:
        shown = "\n".join(problems[:20]) + (f"\n… and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise UserError(f"{source}: nothing was added:\n{shown}")
    if not items:
        raise UserError(f"{source} holds no items")
    return items


@jobs_app.command("list")
def jobs_list(
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest first, at most this many.")] = 50,
) -> None:
    """The newest jobs, with their state and attempts."""
    from db.jobs import list_jobs, view

    ctx = CliContext()
    with ctx.sessions() as session:
        jobs = [view(job) for job in list_jobs(session, queue, status, limit)]
    table = Table("Row", "Queue", "Job id", "Name", "Status", "Attempts", "Created (UTC)", "Finished (UTC)")
    for job in jobs:
        table.add_row(
            *cells(job.id, job.queue, job.job_key, job.name, job.status.value),
            *cells(f"{job.attempts_made}/{job.attempts_allowed}", utc_time(job.created_at), utc_time(job.finished_at)),
        )
    ctx.console.print(table)


@jobs_app.command("show")
def jobs_show(
    job: Annotated[str, typer.Argument(help="The job: its row id, QUEUE/JOB_ID, or its job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The job as JSON.")] = False,
) -> None:
    """Data, status, attempts, progress, result, last error, times and the Web UI link."""
    from starter.job_producer import JobError, JobProducer

    ctx = CliContext()
    jobs = ctx.jobs_file()
    try:
        found = JobProducer.lookup(ctx.sessions, job)
    except JobError as error:
        raise UserError(str(error)) from None
    if as_json:
        ctx.console.print_json(found.model_dump_json())
        return
    link = _web_ui_link(ctx, found)
    lines = [
        f"Job {found.job_key} (row {found.id}) in queue {found.queue}" + (f": {found.name}" if found.name else ""),
        f"Status: {found.status.value}, {found.attempts_made} of {found.attempts_allowed} attempts made,"
        f" priority {found.priority}",
        f"Created {utc_time(found.created_at)}, started {utc_time(found.started_at)},"
        f" finished {utc_time(found.finished_at)}"
        + (f", runs after {utc_time(found.run_after)}" if found.run_after else ""),
        f"Data: {json.dumps(found.data, ensure_ascii=False)}",
        *(
            [
                f"Items: {found.items:,}: "
                + ", ".join(f"{count:,} {state}" for state, count in found.item_counts.items())
            ]
            if found.item_counts
            else []
        ),
        f"Progress: {json.dumps(found.progress)}",
        f"Result: {json.dumps(found.result, ensure_ascii=False)}",
        f"Last error: {found.error or '-'}",
        f"Web UI: {link}",
    ]
    if jobs is not None and found.queue not in {queue.name for queue in jobs.queues}:
        lines.append(f"(queue {found.queue} is no longer in the jobs file)")
    for line in lines:
        ctx.console.print(Text(line))


@jobs_app.command("cancel")
def jobs_cancel(job: Annotated[str, typer.Argument(help="The job: its row id, QUEUE/JOB_ID, or its job id.")]) -> None:
    """Cancel a job that has not finished (a running attempt is let finish its request)."""
    _act(job, "cancel", "cancel requested")


@jobs_app.command("retry")
def jobs_retry(job: Annotated[str, typer.Argument(help="The job: its row id, QUEUE/JOB_ID, or its job id.")]) -> None:
    """Run a failed or cancelled job again, same id, its attempts anew."""
    _act(job, "retry", "runs again")


def _act(reference: str, action: str, done: str) -> None:
    from starter.asyncio_bridge import run
    from starter.job_producer import JobError

    ctx = CliContext()

    async def go() -> JobView:
        producer = await _producer(ctx)
        result: JobView = await getattr(producer, action)(reference)
        return result

    try:
        job = run(go())
    except JobError as error:
        raise UserError(str(error)) from None
    ctx.console.print(f"Job {job.job_key} of queue {job.queue}: {done}", highlight=False)


async def _producer(ctx: CliContext) -> Any:
    from starter.asyncio_bridge import connect_or_explain
    from starter.job_producer import JobProducer

    jobs = ctx.jobs_file()
    client = await connect_or_explain(ctx.settings)
    return JobProducer(client, ctx.sessions, jobs, ctx.settings.task_queue_prefix)


def _data(text: str) -> dict[str, Any]:
    source = "--data"
    if text.startswith("@"):
        path = Path(text[1:])
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    if not isinstance(parsed, dict):
        raise UserError(f"{source} must be a JSON object, not {type(parsed).__name__}")
    return parsed


def _delay(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        return float(parse_seconds(text))
    except ValueError as error:
        raise UserError(f"--delay: {error}") from None


def _web_ui_link(ctx: CliContext, job: JobView) -> str:
    from runtime.names import job_workflow_id

    workflow_id = job_workflow_id(job.queue, job.job_key, ctx.settings.task_queue_prefix)
    return f"{ctx.settings.web_ui_url.rstrip('/')}/namespaces/{ctx.settings.temporal_namespace}/workflows/{workflow_id}"
