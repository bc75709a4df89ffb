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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from temporalio.client import Client

from bench.report import RESULTS

Measure = Callable[[Namespace, Path, ExitStack], Coroutine[Any, Any, dict[str, Any]]]


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
