"""A send activity's heartbeat, kept by a thread while the activity works.

A worker killed mid-send is noticed by Temporal when its heartbeats stop (the heartbeat
timeout, seconds), not when the start-to-close timeout runs out (a minute, or a whole
batch's worth). The heartbeat comes from a thread because the work itself blocks for as
long as a provider takes to answer. The same thread keeps the row being sent held: a
row's hold is as short as the heartbeat timeout, so the attempt that takes over after a
crash finds it free, and a slow provider call keeps its row by extending the hold while
the worker lives (DESIGN R3: no second attempt sends beside a running one).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio import activity

from db.engine import single_statements
from db.sending import hold_until

# Beats per heartbeat timeout: a lost beat or two still leaves the activity alive.
BEATS_PER_TIMEOUT = 4


def row_hold() -> timedelta:
    """How long an attempt holds the row it sends: the heartbeat timeout when the activity
    has one (the hold is extended while the worker lives), else its start-to-close timeout,
    after which Temporal starts the next attempt anyway."""
    if activity.in_activity():
        info = activity.info()
        if info.heartbeat_timeout:
            return info.heartbeat_timeout
        if info.start_to_close_timeout:
            return info.start_to_close_timeout
    return timedelta(seconds=60)


class SendHeartbeat:
    """Heartbeats with the latest progress, and extends the hold of the row being sent
    once half of it has passed. Inert outside an activity or without a heartbeat timeout."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock
        self.hold = row_hold()
        self.details: tuple[Any, ...] = ()
        self._lock = threading.Lock()
        self._row: int | None = None
        self._row_since = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SendHeartbeat:
        timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
        if timeout:
            interval = timeout.total_seconds() / BEATS_PER_TIMEOUT
            # The activity's context travels with the thread: `activity.heartbeat` needs it.
            context = contextvars.copy_context()
            self._thread = threading.Thread(
                target=context.run, args=(self._beat_until_stopped, interval), name="send-heartbeat", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def progress(self, *details: Any) -> None:
        """What a retry of this activity resumes from (`activity.info().heartbeat_details`),
        sent with the next beat: a batch shorter than a beat sends no heartbeat at all (each
        is a billed action on Temporal Cloud), and messages a lost beat did not report are
        found closed by the retry and not sent again."""
        self.details = details

    @contextmanager
    def sending(self, execution_id: int) -> Iterator[None]:
        """While the body runs, the row's hold (if this attempt holds it) is kept alive."""
        with self._lock:
            self._row, self._row_since = execution_id, time.monotonic()
        try:
            yield
        finally:
            with self._lock:  # no extension lands after the row's own last statement
                self._row = None

    def _beat_until_stopped(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                activity.heartbeat(*self.details)
                self._keep_row()
            except Exception as error:  # a missed beat is retried next interval
                activity.logger.warning("send heartbeat failed: %s", type(error).__name__)

    def _keep_row(self) -> None:
        with self._lock:
            if self._row is None or time.monotonic() - self._row_since < self.hold.total_seconds() / 2:
                return
            with single_statements(self.engine) as db:
                hold_until(db, self._row, self.clock() + self.hold)
            self._row_since = time.monotonic()
