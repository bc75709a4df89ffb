"""A delivery's attempts (DESIGN W2, W3), below the workflow: the target is checked again
before every delivery, so an endpoint whose address is not allowed (any more) gets a
refused attempt and no request; and a delivery that never gets through is tried on
Svix's schedule, each wait within its ±10 % jitter, and fails after the last attempt.
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.webhooks import WebhookActivities
from db.engine import unit_of_work
from db.events import record_event
from db.models import WebhookAttempt, WebhookDelivery
from db.webhooks import (
    ATTEMPTS,
    DELIVERED,
    FAILED,
    PENDING,
    RETRY_WAITS,
    Answer,
    add_endpoint,
    claim_deliveries,
    failing_since,
    outgoing,
    record_answer,
    take_on_events,
)
from runtime.secrets import SecretBox
from runtime.settings import WebhookSettings
from schemas.events import CampaignData, EventType
from schemas.webhooks_io import ClaimWebhooksInput, DeliverWebhooksInput
from tests.conftest import Database
from tests.support import TEST_SECRET_KEY

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
KEY = SecretStr(TEST_SECRET_KEY)
PRIVATE_URL = "http://127.0.0.1:9/hook"
LEASE = timedelta(minutes=1)


def an_endpoint_with_one_event(db: Database, url: str) -> int:
    """An endpoint (added when its address was allowed) and one event waiting for it."""
    secret = "whsec_" + base64.b64encode(b"a test secret of 24 bytes").decode()
    with unit_of_work(db.sessions) as session:
        endpoint_id = add_endpoint(session, url, [], SecretBox(KEY).encrypt({"secret": secret}), NOW)
        data = CampaignData(campaign_id=1, name="Spring", status="PAUSED", at=NOW)
        record_event(session, EventType.CAMPAIGN_PAUSED, data, NOW)
    return endpoint_id


def deliveries(db: Database) -> list[WebhookDelivery]:
    with db.sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def attempts(db: Database) -> list[WebhookAttempt]:
    with db.sessions() as session:
        return list(session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)))


async def test_a_private_address_not_allowed_at_delivery_time_is_refused_without_a_request(db: Database) -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    def activities(*, allow_private: bool) -> WebhookActivities:
        settings = WebhookSettings(allow_private=allow_private)
        return WebhookActivities(db.sessions, KEY, settings, httpx.Client(transport=httpx.MockTransport(answer)))

    async def deliver(acts: WebhookActivities, endpoint_id: int, token: str, now: datetime) -> tuple[int, int]:
        """Claim and deliver as the workflow does; (delivered, retrying)."""
        env = ActivityEnvironment()
        claim = ClaimWebhooksInput(endpoint_id=endpoint_id, limit=10, claim_token=token, now=now)
        claimed = await env.run(acts.claim_webhooks, claim)
        assert len(claimed.delivery_ids) == 1
        request = DeliverWebhooksInput(
            endpoint_id=endpoint_id, delivery_ids=claimed.delivery_ids, claim_token=token, now=now
        )
        result = env.run(acts.deliver_webhooks, request)
        return result.delivered, result.retrying

    endpoint_id = an_endpoint_with_one_event(db, PRIVATE_URL)

    assert await deliver(activities(allow_private=False), endpoint_id, "claim-1", NOW) == (0, 1)
    assert requests == [], "no request to a refused address"
    [refused] = attempts(db)
    assert (refused.attempt, refused.status_code, refused.latency_ms) == (1, None, None)
    assert "127.0.0.1 resolves to 127.0.0.1" in (refused.error or "")
    assert "public addresses only" in (refused.error or "")
    [waiting] = deliveries(db)
    assert (waiting.status, waiting.attempts) == (PENDING, 1), "refused counts as a failed attempt, retried later"

    later = NOW + timedelta(minutes=1)
    assert await deliver(activities(allow_private=True), endpoint_id, "claim-2", later) == (1, 0), (
        "the same delivery goes out where private addresses are allowed"
    )
    assert [str(request.url) for request in requests] == [PRIVATE_URL]


def test_a_delivery_that_never_gets_through_is_tried_on_the_schedule_and_fails_after_the_last_attempt(
    db: Database,
) -> None:
    endpoint_id = an_endpoint_with_one_event(db, "https://app.example.com/hook")
    with unit_of_work(db.sessions) as session:
        assert take_on_events(session, endpoint_id, NOW) == 1
    now, statuses, due = NOW, [], [NOW]
    for attempt in range(1, ATTEMPTS + 1):
        token = f"claim-{attempt}"
        with unit_of_work(db.sessions) as session:
            early = claim_deliveries(session, endpoint_id, 10, token, now - timedelta(seconds=1), LEASE)
            assert early.delivery_ids == [], "nothing before its time"
            claimed = claim_deliveries(session, endpoint_id, 10, token, now, LEASE)
            [item] = outgoing(session, claimed.delivery_ids, token)
            assert item.attempts == attempt - 1
            statuses.append(record_answer(session, endpoint_id, token, item, Answer(503, 40, "HTTP 503"), now))
        [delivery] = deliveries(db)
        if delivery.status == PENDING:
            now = delivery.next_attempt_at
            due.append(now)

    assert statuses == [PENDING] * (ATTEMPTS - 1) + [FAILED]
    waits = [later - earlier for earlier, later in itertools.pairwise(due)]
    assert len(waits) == len(RETRY_WAITS) == 7
    for wait, scheduled in zip(waits, RETRY_WAITS, strict=True):
        assert scheduled * 0.9 <= wait <= scheduled * 1.1, f"{wait} is not {scheduled} ±10 %"
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (FAILED, ATTEMPTS, 503)
    assert [(row.attempt, row.attempted_at) for row in attempts(db)] == list(enumerate(due, 1))
    with unit_of_work(db.sessions) as session:
        after = claim_deliveries(session, endpoint_id, 10, "claim-after", now + timedelta(days=30), LEASE)
    assert (after.delivery_ids, after.next_due_at) == ([], None), "a failed delivery is never tried again"


@pytest.mark.parametrize(
    ("answers", "failing_from"),
    [
        pytest.param([204, 204, 503, 204, 503, 500], 4, id="failing since the first failure after the last delivery"),
        pytest.param([503, 204, 204], None, id="a delivery after a failure: not failing"),
        pytest.param([500, 503], 0, id="failing since the first"),
    ],
)
async def test_a_batch_records_every_attempt_and_when_the_endpoint_began_failing(
    db: Database, answers: list[int], failing_from: int | None
) -> None:
    """Deliveries are recorded together (one commit for a run of them), with the same
    outcome per event, and the endpoint's failing time as if recorded one by one."""
    endpoint_id = an_endpoint_with_one_event(db, PRIVATE_URL)
    with unit_of_work(db.sessions) as session:
        for _ in answers[1:]:
            data = CampaignData(campaign_id=1, name="Spring", status="PAUSED", at=NOW)
            record_event(session, EventType.CAMPAIGN_PAUSED, data, NOW)
        assert take_on_events(session, endpoint_id, NOW) == len(answers)
    replies = iter(answers)
    acts = WebhookActivities(
        db.sessions,
        KEY,
        WebhookSettings(allow_private=True),
        httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(next(replies)))),
    )
    env = ActivityEnvironment()
    claim = ClaimWebhooksInput(endpoint_id=endpoint_id, limit=10, claim_token="c", now=NOW)
    claimed = await env.run(acts.claim_webhooks, claim)
    request = DeliverWebhooksInput(endpoint_id=endpoint_id, delivery_ids=claimed.delivery_ids, claim_token="c", now=NOW)
    result = env.run(acts.deliver_webhooks, request)

    delivered = sum(200 <= code < 300 for code in answers)
    assert (result.delivered, result.retrying, result.failed) == (delivered, len(answers) - delivered, 0)
    assert [row.status_code for row in attempts(db)] == answers
    assert [row.status for row in deliveries(db)] == [DELIVERED if code < 300 else PENDING for code in answers]
    with db.sessions() as session:
        since = failing_since(session, endpoint_id)
    if failing_from is None:
        assert since is None
    else:
        assert since == attempts(db)[failing_from].attempted_at
