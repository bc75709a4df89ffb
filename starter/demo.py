"""`outbound demo`: the whole pipeline on the embedded defaults, watched live.

Starts a Temporal dev server (with its Web UI), a worker in this process, migrates the
SQLite database, imports the sample contacts, creates and launches the sample campaign,
and shows progress until the campaign completes.

Everything it starts is stopped when its task is cancelled, which is what Ctrl-C does
through `asyncio.run` and SIGTERM does through `starter.shutdown` (the CLI runs it so):
the worker and the API service (tasks in this process), then the dev server (a process).
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from temporalio.client import Client, WorkflowExecutionStatus

from db.campaigns_repo import create_campaign
from db.contacts_repo import add_sender, import_contacts
from db.engine import SessionFactory, make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.models import Campaign
from db.status import campaign_report
from domain.campaign_yaml import load_campaign_file
from domain.contacts_csv import RowError, open_contacts_csv
from runtime.search_attributes import register_search_attributes
from runtime.settings import Settings
from runtime.temporal import connect
from starter.cli_campaign import render_report
from starter.cli_schedules import sync_for_dev
from starter.client import OutboundClient
from starter.demo_receiver import DemoReceiver, demo_receiver
from starter.devserver import port_open, start_dev_server, stop
from workers.worker import build_workers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def run_demo(
    settings: Settings, console: Console, *, keep_running: bool, home: Path, ui_port: int | None = None
) -> int:
    """`ui_port` defaults to the gRPC port + 1000, as `temporal server start-dev` does."""
    host, _, port = settings.temporal_address.rpartition(":")
    ui_port = ui_port or int(port) + 1000
    server = None
    if not port_open(host or "127.0.0.1", int(port)):
        console.print(f"Starting the Temporal dev server on {settings.temporal_address} (Web UI on :{ui_port}) ...")
        server = start_dev_server(home, port=int(port), ui_port=ui_port, namespace=settings.temporal_namespace)
    try:
        return await _demo(settings, console, keep_running=keep_running, ui_port=ui_port)
    finally:
        if server is not None:
            stop(server)


async def _demo(settings: Settings, console: Console, *, keep_running: bool, ui_port: int) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    campaign_id = _load_examples(sessions, console)
    client = await connect(settings)
    await register_search_attributes(client, settings.temporal_namespace)
    await sync_for_dev(client, settings, console)
    # The demo's stand-in app listens on 127.0.0.1: its deliveries may go there.
    settings = settings.model_copy(update={"webhooks": settings.webhooks.model_copy(update={"allow_private": True})})
    workers = build_workers(client, settings, sessions)
    worker_task = asyncio.create_task(workers.run())
    api_task: asyncio.Task[None] | None = None
    try:
        api_task = await _start_api(settings, console)
        async with demo_receiver(client, sessions, settings) as receiver:
            return await _run_campaign(client, settings, sessions, console, campaign_id, receiver,
                                       keep_running=keep_running, ui_port=ui_port)  # fmt: skip
    finally:
        if api_task is not None:
            api_task.cancel()
            await asyncio.gather(api_task, return_exceptions=True)
        await workers.shutdown()
        await asyncio.gather(worker_task, return_exceptions=True)
        engine.dispose()


async def _run_campaign(
    client: Client,
    settings: Settings,
    sessions: SessionFactory,
    console: Console,
    campaign_id: int,
    receiver: DemoReceiver,
    *,
    keep_running: bool,
    ui_port: int,
) -> int:
    outbound = OutboundClient(client, settings.task_queue_prefix, settings.tuning())
    with sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        name = campaign.name if campaign else None
    handle = await outbound.launch(campaign_id, name=name)
    console.print(f"Launched campaign {campaign_id} as workflow [bold]{handle.id}[/]")
    ui = f"http://localhost:{ui_port}/namespaces/{settings.temporal_namespace}/workflows/{handle.id}"
    console.print(f"Web UI: [link={ui}]{ui}[/link]")
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            with sessions() as session:
                report = campaign_report(session, campaign_id)
            assert report is not None
            live.update(render_report(report))
            description = await handle.describe()
            if description.status != WorkflowExecutionStatus.RUNNING:
                with sessions() as session:
                    live.update(render_report(campaign_report(session, campaign_id)))  # type: ignore[arg-type]
                break
            await asyncio.sleep(0.5)
    final = description.status.name.lower() if description.status else "unknown"
    console.print(f"Campaign {campaign_id} finished: {final}")
    await receiver.until_completed()
    heard = ", ".join(f"{event['type']} ({message_id})" for message_id, event in receiver.received)
    console.print(
        f"Your app heard, as signed webhooks (examples/webhook_receiver.py): {heard or 'nothing yet'}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"Outbox (the messages written): [bold]{settings.outbox_dir.resolve()}[/]")
    console.print(f"Web UI: {ui}")
    if keep_running:
        console.print("Dev server and worker keep running; press Ctrl-C to stop.")
        with suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    return 0 if description.status == WorkflowExecutionStatus.COMPLETED else 1


async def _start_api(settings: Settings, console: Console) -> asyncio.Task[None] | None:
    """The HTTP service (health, webhooks, unsubscribe) beside the worker; a taken port
    only costs the demo its API, not the campaign."""
    from workers.api.server import serve_api

    ready = asyncio.Event()
    task = asyncio.create_task(serve_api(settings, ready=ready, handle_signals=False))
    waiting = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # Ctrl-C or SIGTERM while it starts
        task.cancel()
        waiting.cancel()
        await asyncio.gather(task, waiting, return_exceptions=True)
        raise
    if not ready.is_set():
        waiting.cancel()
        error = task.exception() if task.done() and not task.cancelled() else None
        console.print(f"[yellow]API service not started[/] ({error}); set OUTBOUND_API_PORT to use another port")
        return None
    console.print(f"API service: http://{settings.api_host}:{settings.api_port}/health")
    return task


def _load_examples(sessions: SessionFactory, console: Console) -> int:
    now = datetime.now(UTC)
    with unit_of_work(sessions) as session:
        for group, name in (("Group A", "leads-a.csv"), ("Group B", "leads-b.csv")):
            with open_contacts_csv(EXAMPLES / name) as rows:
                records = [row for row in rows if not isinstance(row, RowError)]
            result = import_contacts(session, records, group, now)
            console.print(f"Imported {len(records)} contacts from {name} into {group!r} ({result.inserted} new)")
        add_sender(session, "email", "sales@outbound.example", "outbox", 200, "UTC", now)
        add_sender(session, "sms", "+15005550006", "outbox", 200, "UTC", now)
        add_sender(session, "voicemail", "+15005550006", "outbox", 200, "UTC", now)
    spec = load_campaign_file(EXAMPLES / "demo-campaign.yaml")
    with unit_of_work(sessions) as session:
        campaign_id = create_campaign(session, spec, now)
    console.print(f"Created campaign {campaign_id}: {spec.name} ({len(spec.steps)} steps)")
    return campaign_id
