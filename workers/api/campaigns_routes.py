"""`/v1/campaigns`, `/v1/contacts/replied`, `/v1/suppressions`: the app controls campaigns
from its own backend, with an API key. Lifecycle changes go through the campaign
workflow's Updates (acknowledged once the gate is committed; a clear 409 when the state
forbids them), the same code path as `outbound campaign pause | resume | cancel`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from db.analytics import refresh_campaign
from db.analytics_funnel import campaign_funnel
from db.contacts_repo import add_suppression, find_contact_by_email, find_contact_by_phone, stop_contact
from db.engine import SessionFactory, unit_of_work
from db.models import Campaign, Contact
from db.status import campaign_report
from runtime.settings import Settings
from schemas.campaign_funnel import CampaignFunnel
from schemas.enums import CampaignStatus, SkipReason
from schemas.signals import LifecycleAck
from starter.client import CampaignControlError, OutboundClient
from workers.api.auth import api_key_guard
from workers.api.temporal_link import TemporalSource, client_or_503


class CampaignListed(BaseModel):
    id: int
    name: str
    status: str


class LaunchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_delay_seconds: int = Field(0, ge=0, le=30 * 86_400)


class LifecycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500)


class Launched(BaseModel):
    campaign_id: int
    workflow_id: str


class RepliedRequest(BaseModel):
    """The contact by id, email or phone (one of them)."""

    model_config = ConfigDict(extra="forbid")
    contact_id: int | None = None
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)

    @model_validator(mode="after")
    def _one(self) -> RepliedRequest:
        if sum(value is not None for value in (self.contact_id, self.email, self.phone)) != 1:
            raise ValueError("give exactly one of contact_id, email, phone")
        return self


class Stopped(BaseModel):
    contact_id: int
    stopped_messages: int


class SuppressionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=320, description="An email, a phone number or @domain.")
    reason: str = Field(min_length=1, max_length=200)


class Suppressed(BaseModel):
    kind: str
    value: str
    reason: str


def campaigns_router(settings: Settings, sessions: SessionFactory, temporal: TemporalSource | None) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[Depends(api_key_guard(settings, sessions))])

    async def control() -> OutboundClient:
        return OutboundClient(await client_or_503(temporal), settings.task_queue_prefix, settings.tuning())

    def existing(campaign_id: int) -> Campaign:
        with sessions() as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                raise HTTPException(404, f"campaign {campaign_id} does not exist")
            session.expunge(campaign)
            return campaign

    @router.get("/campaigns", response_model=list[CampaignListed])
    async def campaigns() -> list[CampaignListed]:
        def listed() -> list[CampaignListed]:
            with sessions() as session:
                rows = session.execute(select(Campaign.id, Campaign.name, Campaign.status).order_by(Campaign.id))
                return [CampaignListed(id=row[0], name=row[1], status=row[2]) for row in rows]

        return await run_in_threadpool(listed)

    @router.get("/campaigns/{campaign_id}")
    async def campaign(campaign_id: int) -> dict[str, Any]:
        """The figures of `outbound campaign status --json`: per-step counts and totals."""

        def read() -> Any:
            with sessions() as session:
                return campaign_report(session, campaign_id)

        report = await run_in_threadpool(read)
        if report is None:
            raise HTTPException(404, f"campaign {campaign_id} does not exist")
        if report.status != CampaignStatus.DRAFT.value and temporal is not None:
            try:
                found = await (await control()).workflow_status(campaign_id)
                report.workflow_status = found.name if found else None
            except HTTPException:
                report.workflow_status = None
        data: dict[str, Any] = report.model_dump(mode="json") | {"totals": report.totals}
        return data

    @router.get("/campaigns/{campaign_id}/report", response_model=CampaignFunnel)
    async def report(campaign_id: int) -> CampaignFunnel:
        """The funnel per step (`outbound campaign report --json`), refreshed first."""
        existing(campaign_id)

        def funnel() -> CampaignFunnel | None:
            with unit_of_work(sessions) as session:
                refresh_campaign(session, campaign_id, datetime.now(UTC))
            with sessions() as session:
                return campaign_funnel(session, campaign_id)

        found = await run_in_threadpool(funnel)
        if found is None:
            raise HTTPException(404, f"campaign {campaign_id} does not exist")
        return found

    @router.post("/campaigns/{campaign_id}/launch", status_code=202, response_model=Launched)
    async def launch(campaign_id: int, body: LaunchRequest | None = None) -> Launched:
        campaign = existing(campaign_id)
        if campaign.status != CampaignStatus.DRAFT.value:
            raise HTTPException(
                409, f"campaign {campaign_id} is {campaign.status}; only a DRAFT campaign can be launched"
            )
        delay = body.start_delay_seconds if body else 0
        try:
            handle = await (await control()).launch(campaign_id, start_delay_seconds=delay, name=campaign.name)
        except CampaignControlError as error:
            raise HTTPException(409, str(error)) from None
        return Launched(campaign_id=campaign_id, workflow_id=handle.id)

    async def lifecycle(campaign_id: int, verb: str, reason: str | None) -> LifecycleAck:
        existing(campaign_id)
        client = await control()
        try:
            if verb == "pause":
                return await client.pause_now(campaign_id, reason)
            if verb == "resume":
                return await client.resume_now(campaign_id)
            return await client.cancel_now(campaign_id, reason)
        except CampaignControlError as error:
            raise HTTPException(409, str(error)) from None

    @router.post("/campaigns/{campaign_id}/pause", response_model=LifecycleAck)
    async def pause(campaign_id: int, body: LifecycleRequest | None = None) -> LifecycleAck:
        return await lifecycle(campaign_id, "pause", body.reason if body else None)

    @router.post("/campaigns/{campaign_id}/resume", response_model=LifecycleAck)
    async def resume(campaign_id: int) -> LifecycleAck:
        return await lifecycle(campaign_id, "resume", None)

    @router.post("/campaigns/{campaign_id}/cancel", response_model=LifecycleAck)
    async def cancel(campaign_id: int, body: LifecycleRequest | None = None) -> LifecycleAck:
        return await lifecycle(campaign_id, "cancel", body.reason if body else None)

    @router.post("/contacts/replied", response_model=Stopped)
    async def replied(body: RepliedRequest) -> Stopped:
        """Stop the contact in every campaign at once (as a reply does), by id or address."""

        def stop() -> Stopped:
            with unit_of_work(sessions) as session:
                contact: Contact | None
                if body.contact_id is not None:
                    contact = session.get(Contact, body.contact_id)
                elif body.email is not None:
                    contact = find_contact_by_email(session, body.email)
                else:
                    contact = find_contact_by_phone(session, body.phone or "")
                if contact is None:
                    raise HTTPException(404, "no such contact")
                skipped = stop_contact(session, contact.id, SkipReason.REPLIED, datetime.now(UTC), source="api")
                return Stopped(contact_id=contact.id, stopped_messages=skipped)

        return await run_in_threadpool(stop)

    @router.post("/suppressions", status_code=201, response_model=Suppressed)
    async def suppress(body: SuppressionRequest) -> Suppressed:
        def add() -> Suppressed:
            with unit_of_work(sessions) as session:
                try:
                    row = add_suppression(session, body.value, body.reason, datetime.now(UTC))
                except ValueError as error:
                    raise HTTPException(422, str(error)) from None
                return Suppressed(kind=row.kind, value=row.value, reason=row.reason)

        return await run_in_threadpool(add)

    return router
