"""Webhooks to the app (DESIGN W2, W3) on the time-skipping server: events reach an
endpoint in order, signed so the `standardwebhooks` package verifies them, each with one
`webhook-id`; failures retry on the schedule (Retry-After honoured), 410 and days of
failures disable the endpoint, a rotated secret and the old one both verify, replay sends
the same id again, and private addresses are refused."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from db.models import WebhookAttempt
from runtime.settings import WebhookSettings
from starter.webhook_admin import WebhookAdmin, WebhookError
from tests.jobs_support import Receiver, delivering, until, webhook_receiver
from tests.support import EMAIL_STEP, Outbound, campaign_spec, people, seed

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def receiver(outbound: Outbound, tmp_path: Path) -> AsyncIterator[Receiver]:
    outbound.overrides = {**outbound.overrides, "webhooks": WebhookSettings(allow_private=True, poll=0)}
    with webhook_receiver() as running:
        yield running


def admin(outbound: Outbound) -> WebhookAdmin:
    return WebhookAdmin(outbound.client, outbound.sessions, outbound.settings)


def attempts(outbound: Outbound) -> list[tuple[int | None, object]]:
    with outbound.sessions() as session:
        rows = session.execute(
            select(WebhookAttempt.status_code, WebhookAttempt.attempted_at).order_by(WebhookAttempt.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_a_campaigns_events_reach_the_endpoint_in_order_signed_and_named_by_their_event(
    outbound: Outbound, receiver: Receiver
) -> None:
    endpoint, secret = await admin(outbound).add(receiver.url, ["message.sent", "campaign.completed"])
    assert secret.startswith("whsec_")
    receiver.trust(secret)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 3)})
    async with delivering(outbound):
        await (await outbound.launch(campaign)).result()
        await until(lambda: len(receiver.received) >= 4, "four events")
    kinds = [event["type"] for _, event in receiver.received]
    assert kinds == ["message.sent"] * 3 + ["campaign.completed"], "only the types asked for, in order"
    ids = [message_id for message_id, _ in receiver.received]
    assert all(message_id.startswith("evt_") for message_id in ids)
    assert len(set(ids)) == 4
    assert sorted(event["data"]["contact"]["email"] for _, event in receiver.received[:3]) == [
        f"a{n}@example.com" for n in range(3)
    ]
    assert receiver.app.state.rejected == 0, "every signature verified with the standardwebhooks package"
    shown = admin(outbound).deliveries(endpoint_id=endpoint.id)
    assert {row.status for row in shown} == {"delivered"}
    assert all(row.latency_ms is not None and row.last_status_code == 204 for row in shown)


async def test_a_failing_endpoint_is_retried_on_the_schedule_and_a_retry_after_is_honoured(
    outbound: Outbound, receiver: Receiver, workflow_env: WorkflowEnvironment
) -> None:
    endpoint, secret = await admin(outbound).add(receiver.url, ["campaign.completed"])
    receiver.trust(secret)
    receiver.answer_first(500, 503, 429, retry_after=3600)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 1)})
    async with delivering(outbound):
        await (await outbound.launch(campaign)).result()
        await until(lambda: len(attempts(outbound)) >= 1, "the first attempt")
        for _ in range(40):
            if len(attempts(outbound)) >= 4:
                break
            await workflow_env.sleep(timedelta(minutes=10))
            await asyncio.sleep(0.2)
    made = attempts(outbound)
    assert [code for code, _ in made] == [500, 503, 429, 204]
    times = [at for _, at in made]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]  # type: ignore[operator]
    assert timedelta(seconds=4) <= gaps[0] <= timedelta(minutes=1), "the second attempt about 5 s later"
    assert timedelta(minutes=4) <= gaps[1] <= timedelta(minutes=15), "the third about 5 minutes later"
    assert gaps[2] >= timedelta(minutes=59), "the 429's Retry-After (an hour) beats the schedule's 30 minutes"
    assert [message_id for message_id, _ in receiver.received].count(receiver.received[0][0]) == 4, (
        "one webhook-id for every attempt"
    )
    assert endpoint.status == "enabled"


async def test_an_endpoint_that_answers_410_is_disabled_and_the_app_hears_it_elsewhere(
    outbound: Outbound, receiver: Receiver
) -> None:
    gone, gone_secret = await admin(outbound).add(receiver.url, ["campaign.completed"])
    with webhook_receiver() as other:
        watcher, watcher_secret = await admin(outbound).add(other.url, ["webhook.endpoint_disabled"])
        receiver.trust(gone_secret)
        other.trust(watcher_secret)
        receiver.answer_first(410)
        campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 1)})
        async with delivering(outbound):
            await (await outbound.launch(campaign)).result()
            await until(lambda: len(other.received) >= 1, "the endpoint_disabled event on the other endpoint")
            assert admin(outbound).get(gone.id).status == "disabled"
            assert "410" in (admin(outbound).get(gone.id).disabled_reason or "")
            assert admin(outbound).get(watcher.id).status == "enabled"
    [(_, event)] = other.received
    assert (event["type"], event["data"]["endpoint_id"]) == ("webhook.endpoint_disabled", gone.id)


async def test_an_endpoint_failing_longer_than_disable_after_is_disabled(
    outbound: Outbound, receiver: Receiver, workflow_env: WorkflowEnvironment
) -> None:
    outbound.overrides = {
        **outbound.overrides,
        "webhooks": WebhookSettings(allow_private=True, poll=0, disable_after=3600),
    }
    endpoint, secret = await admin(outbound).add(receiver.url, ["campaign.completed"])
    receiver.trust(secret)
    receiver.answer_first(*[500] * 20)
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 1)})
    async with delivering(outbound):
        await (await outbound.launch(campaign)).result()
        for _ in range(40):
            if admin(outbound).get(endpoint.id).status == "disabled":
                break
            await workflow_env.sleep(timedelta(minutes=30))
            await asyncio.sleep(0.2)
    shown = admin(outbound).get(endpoint.id)
    assert shown.status == "disabled"
    assert "failed for" in (shown.disabled_reason or "")


async def test_after_a_rotation_receivers_with_the_old_or_the_new_secret_both_verify_and_replay_repeats_the_id(
    outbound: Outbound, receiver: Receiver
) -> None:
    endpoint, old = await admin(outbound).add(receiver.url, ["message.sent"])
    new, _ = admin(outbound).rotate_secret(endpoint.id)
    receiver.trust(old)  # a receiver not yet told of the new secret
    campaign = seed(outbound.sessions, campaign_spec([EMAIL_STEP]), {"A": people("a", 1)})
    async with delivering(outbound):
        await (await outbound.launch(campaign)).result()
        await until(lambda: len(receiver.received) >= 1, "the event, verified with the old secret")
        receiver.trust(new)  # and one that already has the new one
        [(first_id, _)] = receiver.received
        assert admin(outbound).replay(event=first_id) == 1
        await until(lambda: len(receiver.received) >= 2, "the replay, verified with the new secret")
    assert [message_id for message_id, _ in receiver.received] == [first_id, first_id], "a replay keeps its id"
    assert receiver.app.state.rejected == 0


async def test_loopback_and_private_addresses_are_refused_unless_allowed(outbound: Outbound) -> None:
    outbound.overrides = {**outbound.overrides, "webhooks": WebhookSettings(allow_private=False)}
    for url in ("http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://[::1]/hook", "http://169.254.169.254/"):
        with pytest.raises(WebhookError, match="public addresses only"):
            await admin(outbound).add(url, [])
    with pytest.raises(WebhookError, match="http:// or https://"):
        await admin(outbound).add("ftp://example.com/hook", [])
    with pytest.raises(WebhookError, match="unknown event type"):
        await admin(outbound).add("https://example.com/hook", ["message.sent", "contact.exploded"])
    assert admin(outbound).all() == [], "nothing half-written"
