"""Gauges measured from the database by a worker process, on a timer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("outbound.metrics")
SAMPLE_SECONDS = 15.0


async def sample_every(sample: Callable[[], object], what: str, interval: float = SAMPLE_SECONDS) -> None:
    """Run `sample` (blocking I/O, in a thread) every `interval` seconds until cancelled; a
    failed sample (database briefly down) is logged and the next one tried."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(None, sample)
        except Exception as error:
            log.warning("%s sample failed: %s", what, type(error).__name__)
        await asyncio.sleep(interval)
