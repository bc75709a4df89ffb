"""`/v1/webhooks`: the app manages its endpoints, sees deliveries and replays events over
HTTP, with an API key (the same code path as `outbound webhooks`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException
from starlette.concurrency import run_in_threadpool

from db.engine import SessionFactory
from runtime.settings import Settings
from schemas.webhooks_api import (
    AddedEndpoint,
    AddEndpointRequest,
    DeliveryOut,
    EndpointOut,
    PingResult,
    ReplayRequest,
    ReplayResult,
    RotatedSecret,
)
from starter.webhook_admin import WebhookAdmin, WebhookError
from workers.api.auth import api_key_guard
from workers.api.temporal_link import TemporalSource, client_or_503

_STATUS_OF = {"invalid": 422, "not_found": 404, "conflict": 409}


def webhooks_router(settings: Settings, sessions: SessionFactory, temporal: TemporalSource | None) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", dependencies=[Depends(api_key_guard(settings, sessions))])

    async def admin(*, connected: bool = False) -> WebhookAdmin:
        client = await client_or_503(temporal) if connected else None
        return WebhookAdmin(client, sessions, settings)

    def refused(error: WebhookError) -> HTTPException:
        return HTTPException(_STATUS_OF[error.kind], str(error))

    @router.post("", status_code=201, response_model=AddedEndpoint)
    async def add(body: AddEndpointRequest) -> AddedEndpoint:
        try:
            added, secret = await (await admin(connected=True)).add(body.url, body.events, body.description)
        except WebhookError as error:
            raise refused(error) from None
        return AddedEndpoint(endpoint=added, secret=secret)

    @router.get("", response_model=list[EndpointOut])
    async def all_endpoints() -> list[EndpointOut]:
        return await run_in_threadpool((await admin()).all)

    @router.get("/deliveries", response_model=list[DeliveryOut])
    async def deliveries(
        endpoint: int | None = None, failed: bool = False, event: str | None = None, limit: int = 50
    ) -> list[DeliveryOut]:
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit is 1 to 1000")
        manager = await admin()
        return await run_in_threadpool(
            lambda: manager.deliveries(endpoint_id=endpoint, failed=failed, event_type=event, limit=limit)
        )

    @router.post("/replay", status_code=202, response_model=ReplayResult)
    async def replay(body: ReplayRequest) -> ReplayResult:
        since = datetime.now(UTC) - timedelta(seconds=body.since) if body.since else None
        manager = await admin()
        try:
            queued = await run_in_threadpool(
                lambda: manager.replay(event=body.event_id, endpoint_id=body.endpoint_id, since=since)
            )
        except WebhookError as error:
            raise refused(error) from None
        return ReplayResult(queued=queued)

    @router.get("/{endpoint_id}", response_model=EndpointOut)
    async def one(endpoint_id: int) -> EndpointOut:
        try:
            return (await admin()).get(endpoint_id)
        except WebhookError as error:
            raise refused(error) from None

    @router.post("/{endpoint_id}/disable", response_model=EndpointOut)
    async def disable(endpoint_id: int) -> EndpointOut:
        try:
            return (await admin()).disable(endpoint_id)
        except WebhookError as error:
            raise refused(error) from None

    @router.post("/{endpoint_id}/enable", response_model=EndpointOut)
    async def enable(endpoint_id: int) -> EndpointOut:
        try:
            return await (await admin(connected=True)).enable(endpoint_id)
        except WebhookError as error:
            raise refused(error) from None

    @router.post("/{endpoint_id}/rotate-secret", response_model=RotatedSecret)
    async def rotate(endpoint_id: int) -> RotatedSecret:
        try:
            secret, until = (await admin()).rotate_secret(endpoint_id)
        except WebhookError as error:
            raise refused(error) from None
        return RotatedSecret(secret=secret, previous_valid_until=until)

    @router.post("/{endpoint_id}/test", response_model=PingResult)
    async def test(endpoint_id: int) -> PingResult:
        manager = await admin()
        try:
            status, elapsed, error = await run_in_threadpool(manager.ping, endpoint_id)
        except WebhookError as problem:
            raise refused(problem) from None
        return PingResult(status_code=status, latency_ms=elapsed, error=error)

    return router
