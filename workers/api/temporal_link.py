"""The API service's view of Temporal: a lazy connection, a reachability check and task
queue pollers.

The service answers webhooks even while Temporal is down (they only write the
database), so it must start without Temporal, report it in `/health`, and connect once
Temporal is back, without a connection attempt per request while it is not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from fastapi import HTTPException
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    DescribeTaskQueueResponse,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

TemporalSource = Callable[[], Awaitable[Client]]
QUEUE_TYPES = {"workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY}


class TemporalUnavailable(RuntimeError):
    """Temporal cannot be reached now; the message is safe to show (no credentials)."""


async def client_or_503(source: TemporalSource | None) -> Client:
    """The Temporal client a route needs, or the 503 that says why there is none."""
    if source is None:
        raise HTTPException(503, "no Temporal client is configured")
    try:
        return await source()
    except TemporalUnavailable as error:
        raise HTTPException(503, f"Temporal is unavailable: {error}") from None


class DescribeUnsupported(RuntimeError):
    """The server does not implement DescribeTaskQueue (the time-skipping test server)."""


class TemporalConnector:
    """Connects on first use and reconnects after a failure, with a growing pause between
    attempts so a health probe every second does not hammer an unreachable server.

    One attempt runs at a time and outlives a caller that gives up waiting (a health
    check's own timeout), so its outcome and the backoff are recorded either way.
    """

    def __init__(
        self,
        connect: TemporalSource,
        *,
        timeout: float = 5.0,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._client: Client | None = None
        self._attempt: asyncio.Task[Client] | None = None
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._last_error = ""

    async def __call__(self) -> Client:
        if self._client is not None:
            return self._client
        if self._attempt is None:
            if self._clock() < self._next_attempt:
                wait = self._next_attempt - self._clock()
                raise TemporalUnavailable(f"{self._last_error} (next attempt in {wait:.0f} s)")
            self._attempt = asyncio.create_task(self._try_connect())
            self._attempt.add_done_callback(_retrieve_outcome)
        return await asyncio.shield(self._attempt)

    async def _try_connect(self) -> Client:
        try:
            self._client = await asyncio.wait_for(self._connect(), self._timeout)
        except Exception as error:
            self._backoff = min(self._max_backoff, max(self._min_backoff, self._backoff * 2))
            self._next_attempt = self._clock() + self._backoff
            self._last_error = f"cannot connect to Temporal: {short_error(error)}"
            raise TemporalUnavailable(self._last_error) from None
        finally:
            self._attempt = None
        self._backoff = 0.0
        return self._client


def _retrieve_outcome(task: asyncio.Task[Client]) -> None:
    """Mark a failure as seen even when every caller stopped waiting (no asyncio warning)."""
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True, slots=True)
class TemporalCheck:
    ok: bool
    namespace: str
    detail: str | None


async def check_temporal(source: TemporalSource | None, namespace: str, timeout: float) -> TemporalCheck:
    """Reachable means the namespace answers, not just that a socket opens."""
    if source is None:
        return TemporalCheck(False, namespace, "no Temporal client is configured")
    try:
        client = await asyncio.wait_for(source(), timeout)
        request = DescribeNamespaceRequest(namespace=client.namespace)
        await client.workflow_service.describe_namespace(request, timeout=timedelta(seconds=timeout))
    except TimeoutError:
        return TemporalCheck(False, namespace, f"Temporal did not answer within {timeout:g} s")
    except TemporalUnavailable as error:
        return TemporalCheck(False, namespace, str(error))
    except Exception as error:
        return TemporalCheck(False, namespace, short_error(error))
    return TemporalCheck(True, client.namespace, None)


async def describe_task_queues(client: Client, queues: list[str], timeout: float) -> list[dict[str, Any]]:
    """Pollers and backlog of each queue, for workflow and activity tasks alike.

    Raises `DescribeUnsupported` when the server lacks the call and `TemporalUnavailable`
    for any other RPC failure, so the endpoint can say which it is.
    """
    pairs = [(queue, kind) for queue in queues for kind in QUEUE_TYPES]
    try:
        answers = await asyncio.gather(*(_describe(client, queue, kind, timeout) for queue, kind in pairs))
    except RPCError as error:
        if error.status == RPCStatusCode.UNIMPLEMENTED:
            raise DescribeUnsupported(
                "this Temporal server does not implement DescribeTaskQueue (the time-skipping test server "
                "does not); point the service at a dev or production server"
            ) from None
        raise TemporalUnavailable(f"DescribeTaskQueue failed: {short_error(error)}") from None
    report: dict[str, dict[str, Any]] = {queue: {"name": queue} for queue in queues}
    for (queue, kind), answer in zip(pairs, answers, strict=True):
        report[queue][kind] = _queue_type_report(answer)
    return list(report.values())


async def _describe(client: Client, queue: str, kind: str, timeout: float) -> DescribeTaskQueueResponse:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=QUEUE_TYPES[kind],
        report_stats=True,
    )
    return await client.workflow_service.describe_task_queue(request, timeout=timedelta(seconds=timeout))


def _queue_type_report(answer: DescribeTaskQueueResponse) -> dict[str, Any]:
    backlog = None
    if answer.HasField("stats"):
        age = answer.stats.approximate_backlog_age
        backlog = {
            "approximate_count": answer.stats.approximate_backlog_count,
            "approximate_age_seconds": age.seconds + age.nanos / 1e9,
            "tasks_add_rate": answer.stats.tasks_add_rate,
            "tasks_dispatch_rate": answer.stats.tasks_dispatch_rate,
        }
    return {"pollers": [_poller(poller) for poller in answer.pollers], "backlog": backlog}


def _poller(poller: PollerInfo) -> dict[str, Any]:
    seen = poller.last_access_time.ToDatetime(tzinfo=UTC).isoformat() if poller.HasField("last_access_time") else None
    return {"identity": poller.identity, "last_access_time": seen, "rate_per_second": poller.rate_per_second}


def short_error(error: BaseException) -> str:
    """One line naming the error, short enough for a health report."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    return f"{name}: {text[:200]}" if text else name
