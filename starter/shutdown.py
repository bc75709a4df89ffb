"""SIGTERM takes Ctrl-C's path in the commands that start processes (`demo`, `dev-server`).

Python turns SIGINT into `KeyboardInterrupt`, and `asyncio.run` turns it into cancelling
its main task, so the `finally` blocks and context managers that stop what a command
started (the Temporal dev server, the in-process worker and API service) run. SIGTERM,
what process managers, `timeout`, `docker stop` and `kill` send, ends a Python process at
once by default and leaves its children running. `StopOnSigterm` makes SIGTERM take the
same path as Ctrl-C for as long as a command runs:

    with StopOnSigterm() as shutdown:
        code = shutdown.run(main())  # instead of asyncio.run(main())
    raise typer.Exit(code)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from types import FrameType, TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

EXIT_ON_SIGTERM = 0
"""The exit status once SIGTERM has stopped a command and everything it started.

0, not 143 (128 + 15): 143 is what a shell reports for a process the signal *killed*; a
command that handles SIGTERM and shuts down cleanly did what it was asked to. That is what
process managers expect: systemd counts exit 0 (or death by SIGTERM) as a clean stop and
marks a unit that exits 143 as failed unless it says `SuccessExitStatus=143`, supervisord's
default `exitcodes` is 0, and Docker and Kubernetes do not judge a stop by its status. It is
also what `outbound worker` does after its graceful shutdown and what Ctrl-C gives these
commands. A cleanup that fails still fails the command (its exception propagates)."""


class StopOnSigterm:
    """Install a SIGTERM handler for the duration of a `with` block (main thread only).

    Outside `run`, SIGTERM raises `KeyboardInterrupt`, as Python's SIGINT handler does.
    Inside `run`, it cancels the coroutine's task, as `asyncio.run` does on Ctrl-C (a
    `KeyboardInterrupt` raised into an event loop could land between any two lines of
    it), and `run` then raises `KeyboardInterrupt`, again as `asyncio.run` does. Further
    SIGTERMs are ignored, so that they cannot cut the cleanup short; it is bounded by
    timeouts, and a process manager's next step is SIGKILL anyway.

    On leaving the block after a SIGTERM, with the `KeyboardInterrupt` (or cancellation)
    it caused or without an error, this exits with `EXIT_ON_SIGTERM`.
    """

    def __init__(self) -> None:
        self.received = False
        self._task: asyncio.Task[Any] | None = None
        self._previous: Any = signal.SIG_DFL

    def __enter__(self) -> StopOnSigterm:
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._previous = signal.SIG_DFL if previous is None else previous
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        signal.signal(signal.SIGTERM, self._previous)
        if self.received and (error is None or isinstance(error, KeyboardInterrupt | asyncio.CancelledError)):
            raise SystemExit(EXIT_ON_SIGTERM) from None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """`asyncio.run(coroutine)`, cancelled by SIGTERM as by Ctrl-C."""

        async def main() -> T:
            self._task = asyncio.current_task()
            try:
                return await coroutine
            finally:
                self._task = None

        try:
            return asyncio.run(main())
        except asyncio.CancelledError:
            if self.received:
                raise KeyboardInterrupt from None
            raise

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.received:
            return
        self.received = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            task.get_loop().call_soon_threadsafe(lambda: None)  # wake the loop, as asyncio.run does
            return
        raise KeyboardInterrupt
