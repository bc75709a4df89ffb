"""The app's HTTP API for webhook endpoints (`/v1/webhooks`): request and response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.durations import parse_seconds


class AddEndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(default_factory=list, description="Event types; empty: every event.")
    description: str | None = Field(None, max_length=500)


class EndpointOut(BaseModel):
    id: int
    url: str
    description: str | None
    events: list[str]
    status: str
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime


class AddedEndpoint(BaseModel):
    endpoint: EndpointOut
    secret: str = Field(description="The signing secret (whsec_...): shown this once.")


class RotatedSecret(BaseModel):
    secret: str
    previous_valid_until: datetime


class PingResult(BaseModel):
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    latency_ms: int | None


class ReplayRequest(BaseModel):
    """One event again (`event_id`, to every endpoint that had it, or `endpoint_id`), or an
    endpoint's deliveries since a while ago (`endpoint_id` and `since`: seconds or `2h`)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(None, pattern=r"^evt_\d+$")
    endpoint_id: int | None = None
    since: float | None = Field(None, gt=0, le=90 * 86_400)

    @field_validator("since", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return float(parse_seconds(value)) if isinstance(value, str) else value


class ReplayResult(BaseModel):
    queued: int
