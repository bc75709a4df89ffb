"""The HTTP service: health and task-queue status for operators, Twilio webhooks and
unsubscribe links for the outside world.

Everything it needs comes in through `ApiDependencies`, so tests build the app around
a test database and a test Temporal client, and the service starts (and answers
webhooks, which only write the database) while Temporal is still unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from db.engine import SessionFactory
from runtime.names import all_queues
from runtime.settings import Settings
from workers.api.auth import operator_guard, presented_token, token_is_valid
from workers.api.campaigns_routes import campaigns_router
from workers.api.jobs_routes import jobs_router
from workers.api.temporal_link import (
    DescribeUnsupported,
    TemporalSource,
    TemporalUnavailable,
    check_temporal,
    describe_task_queues,
    short_error,
)
from workers.api.twilio_webhooks import twilio_router
from workers.api.unsubscribe_pages import unsubscribe_router
from workers.api.webhooks_routes import webhooks_router

log = logging.getLogger("outbound.api")


def utc_now() -> datetime:
    return datetime.now(UTC)


def default_identity() -> str:
    """The same shape as a Temporal worker's default identity, so both line up in logs."""
    return f"{os.getpid()}@{socket.gethostname()}"


def package_version() -> str:
    try:
        return version("outbound")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class ApiDependencies:
    """What the service talks to. `temporal` is called for a client on each use and may
    fail (or be None): the service then reports Temporal down instead of failing."""

    settings: Settings
    sessions: SessionFactory
    temporal: TemporalSource | None
    identity: str = field(default_factory=default_identity)
    started_at: datetime = field(default_factory=utc_now)
    clock: Callable[[], datetime] = utc_now
    version: str = field(default_factory=package_version)
    check_timeout: float = 3.0


def app_api_document(app: FastAPI) -> dict[str, Any]:
    """OpenAPI for the `/v1` routes (the app's API; not Twilio's callbacks or the pages)."""
    document = get_openapi(
        title="Outbound API",
        version="v1",
        description="The app's API: campaigns, contacts, suppressions, jobs, queues, webhook endpoints."
        " Every route needs `Authorization: Bearer <API key>` (`outbound api-keys create NAME`).",
        routes=app.routes,
    )
    document["paths"] = {path: item for path, item in document["paths"].items() if path.startswith("/v1/")}
    return document


def create_app(deps: ApiDependencies) -> FastAPI:
    app = FastAPI(title="Outbound", version=deps.version, openapi_url=None, docs_url=None, redoc_url=None)
    app.middleware("http")(_log_requests)
    app.include_router(twilio_router(deps.settings, deps.sessions, deps.clock))
    app.include_router(unsubscribe_router(deps.settings, deps.sessions, deps.clock))
    app.include_router(jobs_router(deps.settings, deps.sessions, deps.temporal))
    app.include_router(webhooks_router(deps.settings, deps.sessions, deps.temporal))
    app.include_router(campaigns_router(deps.settings, deps.sessions, deps.temporal))

    @app.get("/v1/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        """The app's API as OpenAPI, the same document as `schemas/openapi.json`."""
        return JSONResponse(app_api_document(app))

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        """200 when the database and Temporal both answer, else 503, so a load balancer or
        orchestrator can act on the status code alone. What is down, and the identity and
        version of the process, only with the operator token."""
        database, temporal = await asyncio.gather(
            _check_database(deps.sessions, deps.check_timeout),
            check_temporal(deps.temporal, deps.settings.temporal_namespace, deps.check_timeout),
        )
        ok = database["ok"] and temporal.ok
        code = 200 if ok else 503
        if not token_is_valid(deps.settings, await presented_token(request)):
            return JSONResponse({"status": "ok" if ok else "degraded"}, status_code=code)
        body = {
            "status": "ok" if ok else "degraded",
            "database": database,
            "temporal": {"ok": temporal.ok, "namespace": temporal.namespace, "detail": temporal.detail},
            "identity": deps.identity,
            "uptime_seconds": round((deps.clock() - deps.started_at).total_seconds(), 3),
            "version": deps.version,
        }
        return JSONResponse(body, status_code=code)

    @app.get("/internal/status", dependencies=[Depends(operator_guard(deps.settings, deps.sessions))])
    async def internal_status() -> JSONResponse:
        """Who polls each task queue: a queue without pollers is work nobody will do."""
        namespace = deps.settings.temporal_namespace
        queues = all_queues(deps.settings.task_queue_prefix)
        if deps.temporal is None:
            return _status_error(503, namespace, queues, "no Temporal client is configured")
        try:
            client = await asyncio.wait_for(deps.temporal(), deps.check_timeout)
            report = await describe_task_queues(client, queues, deps.check_timeout)
        except DescribeUnsupported as error:
            return _status_error(501, namespace, queues, str(error))
        except (TemporalUnavailable, TimeoutError) as error:
            return _status_error(503, namespace, queues, str(error) or "Temporal did not answer in time")
        idle = [queue["name"] for queue in report if not _has_pollers(queue)]
        return JSONResponse({"namespace": client.namespace, "queues": report, "queues_without_pollers": idle})

    return app


async def _check_database(sessions: SessionFactory, timeout: float) -> dict[str, Any]:
    def ping() -> str:
        with sessions() as session:
            session.execute(text("SELECT 1"))
            return session.get_bind().dialect.name

    try:
        dialect = await asyncio.wait_for(run_in_threadpool(ping), timeout)
    except TimeoutError:
        return {"ok": False, "detail": f"the database did not answer within {timeout:g} s"}
    except Exception as error:
        return {"ok": False, "detail": short_error(error)}
    return {"ok": True, "detail": None, "dialect": dialect}


def _status_error(status: int, namespace: str, queues: list[str], detail: str) -> JSONResponse:
    return JSONResponse({"namespace": namespace, "queues": [{"name": q} for q in queues], "detail": detail}, status)


def _has_pollers(queue: dict[str, Any]) -> bool:
    return any(queue.get(kind, {}).get("pollers") for kind in ("workflow", "activity"))


async def _log_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """One line per request naming the route template, never the path: paths carry
    unsubscribe tokens. This replaces uvicorn's access log, which prints them."""
    started = time.perf_counter()
    response = await call_next(request)
    route = getattr(request.scope.get("route"), "path", "(no route)")
    elapsed = (time.perf_counter() - started) * 1000
    log.info("%s %s -> %d (%.0f ms)", request.method, route, response.status_code, elapsed)
    return response
