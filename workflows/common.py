"""Small pieces both workflows use."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

from schemas.workflow_io import Tuning

ACTIVITY_TIMEOUT = timedelta(seconds=60)


def history_is_long(tuning: Tuning, reserve: int = 0) -> bool:
    """Time to continue-as-new: at the configured length (less `reserve` events kept for
    draining work in flight) or when the server suggests it."""
    info = workflow.info()
    limit = tuning.history_threshold - min(reserve, tuning.history_threshold // 2)
    return info.get_current_history_length() >= limit or info.is_continue_as_new_suggested()


def seconds_until(moment: datetime) -> float:
    return (moment - workflow.now()).total_seconds()


def local_label(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class Wakeups:
    """Durable waits whose timers are never cancelled.

    A wait ends when its condition holds or when any of this workflow's timers fires; the
    caller re-checks and waits again. Timers are left to fire rather than cancelled: that
    keeps at most a handful pending, and avoids cancelling a timer that fired while the
    workflow task was with the worker, which the time-skipping test server cannot handle
    (temporalio/sdk-java#3088). Only a timer earlier than every pending one is started.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[datetime, asyncio.Task[None]]] = []
        self._fired = 0

    async def wait(
        self, condition: Callable[[], bool], until: datetime | None = None, summary: str | None = None
    ) -> None:
        self._pending = [(deadline, timer) for deadline, timer in self._pending if not timer.done()]
        now = workflow.now()
        if until is not None and until > now and all(until < deadline for deadline, _ in self._pending):
            timer = asyncio.ensure_future(workflow.sleep((until - now).total_seconds(), summary=summary))
            timer.add_done_callback(self._count_fired)
            self._pending.append((until, timer))
        if until is not None and until <= now:
            return
        fired = self._fired
        await workflow.wait_condition(lambda: condition() or self._fired != fired)

    def _count_fired(self, _timer: asyncio.Task[None]) -> None:
        self._fired += 1
