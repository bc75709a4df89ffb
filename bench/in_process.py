"""What the benches with an in-process worker and an HTTP peer share (`jobs_bench`,
`webhooks_bench`): waiting for the peer, the longest history of a workflow's runs, and
running a measurement with its scratch folder and its JSON under bench/results/."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from argparse import Namespace
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from temporalio.client import Client

from bench.database import fresh_database
from bench.processes import free_port
from bench.report import RESULTS
from db.engine import SessionFactory, make_engine, make_session_factory
from db.migrate import upgrade
from runtime.search_attributes import register_search_attributes
from runtime.temporal import DATA_CONVERTER
from starter.devserver import start_dev_server, stop

Measure = Callable[[Namespace, Path, ExitStack], Coroutine[Any, Any, dict[str, Any]]]


@dataclass(frozen=True)
class BenchDeployment:
    """A dev server (its client, its pid) and a fresh migrated PostgreSQL database."""

    client: Client
    server_pid: int
    database_url: str
    sessions: SessionFactory


async def dev_server_and_database(
    scratch: Path, stack: ExitStack, *, admin_url: str, name: str, pool_size: int, say: Callable[[str], None]
) -> BenchDeployment:
    """What every in-process bench starts from; `stack` stops and drops them afterwards."""
    port = free_port()
    say(f"starting the Temporal dev server on 127.0.0.1:{port}")
    server = start_dev_server(scratch / "temporal", port=port, ui_port=free_port())
    stack.callback(stop, server)
    client = await Client.connect(f"127.0.0.1:{port}", data_converter=DATA_CONVERTER)
    await register_search_attributes(client, client.namespace)
    url = stack.enter_context(fresh_database("postgresql", admin_url, scratch, name, keep=False))
    engine = make_engine(url, pool_size=pool_size, max_overflow=8)
    stack.callback(engine.dispose)
    upgrade(engine)
    return BenchDeployment(client, server.pid, url, make_session_factory(engine))


async def wait_for_http(url: str, timeout: float = 20) -> None:
    """Until something answers at `url` (any status)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            try:
                await http.get(url)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def longest_history(client: Client, workflow_id: str) -> int:
    """Events in the longest run of the workflow (continue-as-new makes several)."""
    longest = 0
    async for listed in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(listed.id, run_id=listed.run_id).fetch_history()
        longest = max(longest, len(history.events))
    return longest


def run_and_keep(
    name: str, args: Namespace, measure: Measure, show: Callable[[dict[str, Any]], None], console: Console
) -> int:
    """Measure in a fresh scratch folder, show the figures, keep them as JSON."""
    scratch = Path(tempfile.mkdtemp(prefix=f"outbound-{name}-bench-"))
    with ExitStack() as stack:
        figures = asyncio.run(measure(args, scratch, stack))
    show(figures)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"arguments": vars(args), "figures": figures}, indent=2, default=str))
    console.print(f"Results written to {path}")
    return 0
