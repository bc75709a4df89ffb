"""Managing the app's webhook endpoints (DESIGN W2, W3), for the CLI and the API alike:
add (the secret shown once), list, disable, enable, rotate the secret, ping, list
deliveries, replay. An enabled endpoint has a running delivery workflow; adding or
enabling one starts it (idempotently), disabling one lets it end by itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from db.engine import SessionFactory, unit_of_work
from db.models import Event, WebhookAttempt, WebhookDelivery
from db.webhooks import (
    ENABLED,
    EndpointRow,
    add_endpoint,
    disable,
    endpoint,
    endpoints,
    replay,
    rotate_secret,
    set_enabled,
)
from runtime.names import WEBHOOK_DELIVERY_WORKFLOW, WEBHOOK_WAKE_SIGNAL, webhook_queue, webhook_workflow_id
from runtime.secrets import SecretBox
from runtime.settings import Settings
from runtime.webhook_targets import TargetRefused, check_target, public_only_client
from schemas.events import EVENT_DATA, EventType, PingData, event_id
from schemas.webhooks_api import DeliveryOut, EndpointOut
from schemas.webhooks_io import WebhookDeliveryInput

SUBSCRIBABLE = sorted(kind.value for kind in EVENT_DATA if kind is not EventType.WEBHOOK_PING)


class WebhookError(Exception):
    """A request the CLI or the API refuses, with why; `kind` maps to an HTTP status."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind  # invalid | not_found | conflict


class WebhookAdmin:
    def __init__(self, client: Client | None, sessions: SessionFactory, settings: Settings) -> None:
        self.client = client
        self.sessions = sessions
        self.settings = settings

    async def add(self, url: str, events: list[str], description: str | None = None) -> tuple[EndpointOut, str]:
        """The new endpoint and its secret (`whsec_…`), which is shown this once."""
        unknown = sorted(set(events) - set(SUBSCRIBABLE))
        if unknown:
            raise WebhookError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(SUBSCRIBABLE)}")
        self._check(url)
        secret = _new_secret()
        now = datetime.now(UTC)
        with unit_of_work(self.sessions) as session:
            new_id = add_endpoint(
                session, url, events, self._box().encrypt({"secret": secret}), now, description=description
            )
        await self._start(new_id)
        return self.get(new_id), secret

    def all(self) -> list[EndpointOut]:
        with self.sessions() as session:
            return [_view(row) for row in endpoints(session)]

    def get(self, endpoint_id: int) -> EndpointOut:
        return _view(self._row(endpoint_id))

    def disable(self, endpoint_id: int) -> EndpointOut:
        with unit_of_work(self.sessions) as session:
            self._row(endpoint_id, session)
            if not disable(session, endpoint_id, "disabled by hand", datetime.now(UTC)):
                raise WebhookError(f"endpoint {endpoint_id} is already disabled", "conflict")
        return self.get(endpoint_id)

    async def enable(self, endpoint_id: int) -> EndpointOut:
        row = self._row(endpoint_id)
        self._check(row.url)
        with unit_of_work(self.sessions) as session:
            if not set_enabled(session, endpoint_id, datetime.now(UTC)):
                raise WebhookError(f"endpoint {endpoint_id} is already enabled", "conflict")
        await self._start(endpoint_id)
        return self.get(endpoint_id)

    def rotate_secret(self, endpoint_id: int) -> tuple[str, datetime]:
        """The new secret, and until when the old one still signs beside it."""
        self._row(endpoint_id)
        secret = _new_secret()
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self.settings.webhooks.rotation_grace)
        with unit_of_work(self.sessions) as session:
            rotate_secret(session, endpoint_id, self._box().encrypt({"secret": secret}), until, now)
        return secret, until

    def ping(self, endpoint_id: int) -> tuple[int | None, int, str | None]:
        """A `webhook.ping`, signed like any event, posted now: (status code, ms, error)."""
        row = self._row(endpoint_id)
        self._check(row.url)
        now = datetime.now(UTC)
        body = json.dumps(
            {"type": EventType.WEBHOOK_PING.value, "timestamp": now.isoformat(),
             "data": PingData(endpoint_id=endpoint_id, at=now).model_dump(mode="json")}
        )  # fmt: skip
        message_id = f"ping_{secrets.token_hex(8)}"
        signature = Webhook(self._box().decrypt(row.secret)["secret"]).sign(message_id, now, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        started = time.monotonic()
        try:
            with self._http() as client:
                response = client.post(row.url, content=body, headers=headers, timeout=self.settings.webhooks.timeout)
        except httpx.HTTPError as error:
            return None, int((time.monotonic() - started) * 1000), f"{type(error).__name__}: {error}"
        elapsed = int((time.monotonic() - started) * 1000)
        return response.status_code, elapsed, None if response.is_success else f"HTTP {response.status_code}"

    def _http(self) -> httpx.Client:
        limits = httpx.Limits(max_connections=1)
        return httpx.Client(limits=limits) if self.settings.webhooks.allow_private else public_only_client(limits)

    def deliveries(
        self,
        *,
        endpoint_id: int | None = None,
        failed: bool = False,
        event_type: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryOut]:
        """Newest first: each delivery's state and its last attempt (status code, latency)."""
        query = (
            select(
                WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.event_id, Event.type,
                WebhookDelivery.status, WebhookDelivery.attempts, WebhookDelivery.last_status_code,
                WebhookDelivery.last_error, WebhookDelivery.next_attempt_at, WebhookDelivery.delivered_at,
            )
            .join(Event, Event.id == WebhookDelivery.event_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )  # fmt: skip
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        if failed:
            query = query.where(WebhookDelivery.last_error.is_not(None), WebhookDelivery.status != "delivered")
        if event_type is not None:
            query = query.where(Event.type == event_type)
        with self.sessions() as session:
            rows = session.execute(query).all()
            latencies = dict(
                session.execute(
                    select(WebhookAttempt.delivery_id, WebhookAttempt.latency_ms)
                    .where(WebhookAttempt.delivery_id.in_([row[0] for row in rows]))
                    .order_by(WebhookAttempt.id)
                ).all()
            )
        return [
            DeliveryOut(
                id=row[0], endpoint_id=row[1], event_id=event_id(row[2]), event_type=row[3], status=row[4],
                attempts=row[5], last_status_code=row[6], last_error=row[7],
                next_attempt_at=row[8] if row[4] == "pending" else None, delivered_at=row[9],
                latency_ms=latencies.get(row[0]),
            )
            for row in rows
        ]  # fmt: skip

    def replay(self, *, event: str | None = None, endpoint_id: int | None = None, since: datetime | None = None) -> int:
        """Deliver again with the same `webhook-id`; how many deliveries were queued."""
        if event is None and (endpoint_id is None or since is None):
            raise WebhookError(
                "replay one event (EVENT_ID), or an endpoint's deliveries since a time (--endpoint, --since)"
            )
        number = _event_number(event) if event is not None else None
        if endpoint_id is not None:
            self._row(endpoint_id)
        with unit_of_work(self.sessions) as session:
            try:
                count = replay(session, datetime.now(UTC), event_id=number, endpoint_id=endpoint_id, since=since)
            except LookupError as error:
                raise WebhookError(str(error), "not_found") from None
        return count

    async def ensure_running(self) -> int:
        """A delivery workflow for every enabled endpoint (after a restore, say); how many."""
        enabled = [row.id for row in self.all() if row.status == ENABLED]
        for endpoint_id in enabled:
            await self._start(endpoint_id)
        return len(enabled)

    async def wake(self, endpoint_id: int) -> None:
        """Tell the endpoint's delivery workflow to look now (best effort: it looks anyway
        within its poll)."""
        if self.client is None:
            return
        handle = self.client.get_workflow_handle(webhook_workflow_id(endpoint_id, self.settings.task_queue_prefix))
        with contextlib.suppress(RPCError):
            await handle.signal(WEBHOOK_WAKE_SIGNAL)

    async def _start(self, endpoint_id: int) -> None:
        if self.client is None:
            return
        hooks = self.settings.webhooks
        await self.client.start_workflow(
            WEBHOOK_DELIVERY_WORKFLOW,
            WebhookDeliveryInput(
                endpoint_id=endpoint_id,
                task_queue_prefix=self.settings.task_queue_prefix,
                batch=hooks.batch,
                timeout_seconds=hooks.timeout,
                poll_seconds=hooks.poll,
            ),
            id=webhook_workflow_id(endpoint_id, self.settings.task_queue_prefix),
            task_queue=webhook_queue(self.settings.task_queue_prefix),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"Webhook deliveries to endpoint {endpoint_id}",
        )

    def _row(self, endpoint_id: int, session: Session | None = None) -> EndpointRow:
        if session is not None:
            found = endpoint(session, endpoint_id)
        else:
            with self.sessions() as fresh:
                found = endpoint(fresh, endpoint_id)
        if found is None:
            raise WebhookError(f"no webhook endpoint {endpoint_id}", "not_found")
        return found

    def _check(self, url: str) -> None:
        try:
            check_target(url, allow_private=self.settings.webhooks.allow_private)
        except TargetRefused as error:
            raise WebhookError(str(error)) from None

    def _box(self) -> SecretBox:
        return SecretBox(self.settings.secret_key)


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _event_number(reference: str) -> int:
    digits = reference.removeprefix("evt_")
    if not digits.isdigit():
        raise WebhookError(f"an event id looks like evt_123, got {reference!r}")
    return int(digits)


def _view(row: EndpointRow) -> EndpointOut:
    return EndpointOut(
        id=row.id,
        url=row.url,
        description=row.description,
        events=list(row.event_types),
        status=row.status,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        created_at=row.created_at,
    )
