"""Activities of the webhook delivery workflow (DESIGN W2, W3): claim an endpoint's due
deliveries (waiting a little for new events when none are due), and post them in order,
signed with Standard Webhooks headers, recording every attempt.

Bodies are read from the events table here and go to the endpoint; the workflow sees
delivery ids and counts only.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import SecretStr
from sqlalchemy.orm import Session
from standardwebhooks import Webhook
from temporalio import activity

from db.engine import SessionFactory, unit_of_work
from db.webhooks import (
    DELIVERED,
    ENABLED,
    FAILED,
    Answer,
    Answered,
    EndpointRow,
    Outgoing,
    claim_deliveries,
    disable,
    endpoint,
    failing_since,
    outgoing,
    record_answers,
    release,
    take_on_events,
)
from handlers.http_delegation import retry_after_seconds
from runtime.secrets import SecretBox
from runtime.settings import WebhookSettings
from runtime.webhook_targets import TargetRefused, check_target, public_only_client
from schemas.events import event_id
from schemas.webhooks_io import (
    ClaimWebhooksInput,
    ClaimWebhooksResult,
    DeliverWebhooksInput,
    DeliverWebhooksResult,
)

POLL_INTERVAL = 0.25  # how often a waiting claim looks for new events
# A run of deliveries is recorded (one commit) and the batch heartbeats at most this often;
# an answer that is not a delivery is recorded at once (it may disable the endpoint). A commit
# and a beat per event (each beat waits for the worker's event loop) were most of the cost.
RECORD_EVERY = 1.0


class WebhookActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        secret_key: SecretStr | None,
        settings: WebhookSettings,
        client: httpx.Client | None = None,
    ) -> None:
        self.sessions = sessions
        self.secret_key = secret_key  # endpoint secrets are stored encrypted with it
        self.settings = settings
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self.client = client or (httpx.Client(limits=limits) if settings.allow_private else public_only_client(limits))

    @activity.defn
    async def claim_webhooks(self, request: ClaimWebhooksInput) -> ClaimWebhooksResult:
        """Due deliveries, in order; with none due, new events are waited for up to
        `wait_seconds` (a short poll of the table, so an event reaches its endpoint within
        a fraction of a second), but never past the first waiting retry's time."""
        began = time.monotonic()
        while True:
            elapsed = time.monotonic() - began
            result = await asyncio.to_thread(self._claim_once, request, request.now + timedelta(seconds=elapsed))
            if result.delivery_ids or not result.enabled or elapsed >= request.wait_seconds:
                return result
            if result.next_due_at is not None and result.next_due_at <= request.now + timedelta(
                seconds=elapsed + POLL_INTERVAL
            ):
                return result
            activity.heartbeat()
            try:  # a worker shutting down does not wait out the poll
                await asyncio.wait_for(activity.wait_for_worker_shutdown(), POLL_INTERVAL)
            except TimeoutError:
                continue
            return result

    def _claim_once(self, request: ClaimWebhooksInput, now: datetime) -> ClaimWebhooksResult:
        with unit_of_work(self.sessions) as session:
            found = endpoint(session, request.endpoint_id)
            if found is None or found.status != ENABLED:
                return ClaimWebhooksResult(delivery_ids=[], enabled=False)
            take_on_events(session, request.endpoint_id, now)
            lease = timedelta(seconds=self.settings.timeout * request.limit + 30)
            claimed = claim_deliveries(session, request.endpoint_id, request.limit, request.claim_token, now, lease)
        return ClaimWebhooksResult(delivery_ids=claimed.delivery_ids, next_due_at=claimed.next_due_at)

    @activity.defn
    def deliver_webhooks(self, request: DeliverWebhooksInput) -> DeliverWebhooksResult:
        """Post the claimed deliveries one after another, in their events' order. A 410
        disables the endpoint (the app hears of it on its others), as does an endpoint
        whose deliveries have all failed for `disable_after`."""
        began = time.monotonic()
        with unit_of_work(self.sessions) as session:
            target = endpoint(session, request.endpoint_id)
            items = outgoing(session, request.delivery_ids, request.claim_token)
        result = DeliverWebhooksResult()
        if target is None or target.status != ENABLED:
            return result.model_copy(update={"disabled": True})
        try:
            check_target(target.url, allow_private=self.settings.allow_private)
            refused = None
        except TargetRefused as error:
            refused = str(error)
        answered: list[Answered] = []
        last_recorded = time.monotonic()
        for position, item in enumerate(items):
            answer = Answer(None, None, refused) if refused else self._post(target, item)
            answered.append(Answered(item, answer, request.now + timedelta(seconds=time.monotonic() - began)))
            last = position == len(items) - 1
            if answer.delivered and not last and time.monotonic() - last_recorded < RECORD_EVERY:
                continue  # a run of deliveries is recorded together
            with unit_of_work(self.sessions) as session:
                statuses = record_answers(session, request.endpoint_id, request.claim_token, answered)
                reason = self._reason_to_disable(session, target.id, answer, answered[-1].at)
                if reason is not None:
                    disable(session, target.id, reason, answered[-1].at, tell_the_app=True)
                    release(session, [rest.delivery_id for rest in items[position + 1 :]], answered[-1].at)
                    result.disabled = True
            answered.clear()
            result.delivered += statuses.count(DELIVERED)
            result.failed += statuses.count(FAILED)
            result.retrying += sum(status not in (DELIVERED, FAILED) for status in statuses)
            if result.disabled:
                break
            activity.heartbeat(position + 1)  # never more than a post and a second apart
            last_recorded = time.monotonic()
        activity.logger.info(
            "endpoint %s: %s delivered, %s to retry, %s failed",
            request.endpoint_id, result.delivered, result.retrying, result.failed,
        )  # fmt: skip
        return result

    def _post(self, target: EndpointRow, item: Outgoing) -> Answer:
        body = json.dumps(
            {"type": item.type, "timestamp": item.occurred_at.isoformat(), "data": item.data}, separators=(",", ":")
        )
        message_id = event_id(item.event_id)
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "Outbound-Webhooks/1",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(self._signatures(target, message_id, now, body)),
        }
        started = time.monotonic()
        try:
            response = self.client.post(target.url, content=body, headers=headers, timeout=self.settings.timeout)
        except httpx.TimeoutException:
            return Answer(None, _ms(started), f"no answer within {self.settings.timeout} s")
        except httpx.HTTPError as failure:
            return Answer(None, _ms(started), f"{type(failure).__name__}: {failure}"[:500])
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        problem = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return Answer(
            response.status_code,
            _ms(started),
            problem,
            timedelta(seconds=retry_after) if retry_after is not None else None,
        )

    def _signatures(self, target: EndpointRow, message_id: str, now: datetime, body: str) -> list[str]:
        """The current secret's signature, and the previous one's during its grace period:
        a receiver holding either verifies (Standard Webhooks allows several)."""
        box = SecretBox(self.secret_key)
        secrets = [box.decrypt(target.secret)["secret"]]
        if target.previous_secret and target.previous_secret_until and target.previous_secret_until > now:
            secrets.append(box.decrypt(target.previous_secret)["secret"])
        return [Webhook(secret).sign(message_id, now, body) for secret in secrets]

    def _reason_to_disable(self, session: Session, endpoint_id: int, answer: Answer, now: datetime) -> str | None:
        """A 410, or every delivery failing for `disable_after`: why the endpoint goes."""
        if answer.status_code == 410:
            return "the endpoint answered 410 Gone"
        if answer.delivered:
            return None
        since = failing_since(session, endpoint_id)
        if since is None or now - since < timedelta(seconds=self.settings.disable_after):
            return None
        return f"every delivery failed for {self.settings.disable_after / 86_400:g} days"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
