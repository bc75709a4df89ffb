"""What the webhook delivery workflow and its activities pass each other: ids, counts
and times, never an event's body (it goes to the app, not into history)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WebhookDeliveryInput(BaseModel):
    """One endpoint's delivery workflow, `webhooks-<endpoint id>`."""

    endpoint_id: int
    task_queue_prefix: str = ""
    poll_seconds: float = Field(20.0, ge=0, le=300)  # how long one claim waits for new events (0: timers)
    idle_seconds: float = Field(1.0, gt=0, le=300)  # with poll_seconds 0: how often to look again
    batch: int = Field(50, ge=1, le=500)  # events per delivery activity
    timeout_seconds: int = Field(15, ge=1, le=120)  # an endpoint's time to answer
    claims: int = 0  # claims made by earlier runs: the next claim's token is unique


class ClaimWebhooksInput(BaseModel):
    endpoint_id: int
    limit: int = Field(ge=1, le=500)
    claim_token: str
    now: datetime  # the workflow's time: retry times are on its clock
    wait_seconds: float = 0.0  # nothing due: wait this long for new events before answering


class ClaimWebhooksResult(BaseModel):
    delivery_ids: list[int]
    enabled: bool = True  # False: the endpoint was disabled, the workflow ends
    next_due_at: datetime | None = None  # nothing claimed: when the first waiting retry is due


class DeliverWebhooksInput(BaseModel):
    endpoint_id: int
    delivery_ids: list[int]
    claim_token: str
    now: datetime


class DeliverWebhooksResult(BaseModel):
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: bool = False  # the endpoint answered 410, or has failed for too long
