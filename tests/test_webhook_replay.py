"""Replay against the delivery walk (SQLite and PostgreSQL): an event replayed while its
delivery is in flight is not lost to that attempt's answer; it is sent again after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from db.engine import unit_of_work
from db.events import record_event
from db.models import WebhookAttempt, WebhookDelivery
from db.webhooks import (
    DELIVERED,
    PENDING,
    Answer,
    add_endpoint,
    claim_deliveries,
    outgoing,
    record_answer,
    replay,
    take_on_events,
)
from schemas.events import CampaignData, EventType
from tests.conftest import Database

LEASE = timedelta(minutes=5)


def one_claimed_delivery(db: Database, now: datetime) -> tuple[int, int]:
    """An endpoint, then an event for it, claimed by "claim-1": (endpoint id, event id)."""
    with unit_of_work(db.sessions) as session:
        endpoint = add_endpoint(session, "https://example.com/hook", [], "sealed", now)
        record_event(
            session, EventType.CAMPAIGN_PAUSED, CampaignData(campaign_id=1, name="x", status="PAUSED", at=now), now
        )
    with unit_of_work(db.sessions) as session:
        take_on_events(session, endpoint, now)
        claimed = claim_deliveries(session, endpoint, 10, "claim-1", now, LEASE)
        assert len(claimed.delivery_ids) == 1
        [item] = outgoing(session, claimed.delivery_ids, "claim-1")
    return endpoint, item.event_id


def test_a_replay_while_the_delivery_is_in_flight_is_sent_again_after_the_attempt_answers(db: Database) -> None:
    now = datetime.now(UTC)
    endpoint, event = one_claimed_delivery(db, now)
    with db.sessions() as session:
        [in_flight] = outgoing(session, [session.scalars(select(WebhookDelivery.id)).one()], "claim-1")

    with unit_of_work(db.sessions) as session:
        assert replay(session, now, event_id=event) == 1, "the in-flight delivery counts as replayed"
    with unit_of_work(db.sessions) as session:
        status = record_answer(session, endpoint, "claim-1", in_flight, Answer(204, 12), now + timedelta(seconds=1))
    assert status == PENDING, "the attempt's answer does not close the replay"

    with db.sessions() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.status, delivery.attempts, delivery.claim_token) == (PENDING, 0, None)
        assert session.scalars(select(WebhookAttempt.status_code)).all() == [204], "the attempt is still on record"
    with unit_of_work(db.sessions) as session:
        again = claim_deliveries(session, endpoint, 10, "claim-2", now + timedelta(seconds=2), LEASE)
        [replayed] = outgoing(session, again.delivery_ids, "claim-2")
        assert replayed.event_id == event
        assert record_answer(session, endpoint, "claim-2", replayed, Answer(204, 9), now) == DELIVERED


def test_an_answer_for_a_claim_still_held_closes_the_delivery(db: Database) -> None:
    now = datetime.now(UTC)
    endpoint, _ = one_claimed_delivery(db, now)
    with unit_of_work(db.sessions) as session:
        [item] = outgoing(session, [session.scalars(select(WebhookDelivery.id)).one()], "claim-1")
        assert record_answer(session, endpoint, "claim-1", item, Answer(204, 5), now) == DELIVERED
    with db.sessions() as session:
        assert session.scalars(select(WebhookDelivery.status)).one() == DELIVERED
