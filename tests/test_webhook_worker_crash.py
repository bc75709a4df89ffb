"""A worker killed with `kill -9` in the middle of a batch of deliveries: the next worker
goes on, the receiver may see an event twice but always under its one `webhook-id`, and no
event is lost (the dev server, real `outbound worker` processes, PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import make_engine, make_session_factory, unit_of_work
from db.events import record_event
from db.models import Event
from schemas.events import CampaignData, EventType
from tests.e2e_support import Deployment, TemporalServer, eventually
from tests.jobs_support import webhook_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]
EVENTS = 30


@pytest.fixture
def deployment(temporal_server: TemporalServer, database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(temporal_server, database_url, tmp_path)
    deployment.extra_env = {
        "OUTBOUND_WEBHOOKS__ALLOW_PRIVATE": "true",
        "OUTBOUND_WEBHOOKS__BATCH": "10",
        "OUTBOUND_WEBHOOKS__TIMEOUT": "3",  # a dead worker's batch is noticed 18 s after its last heartbeat
    }
    yield deployment
    deployment.stop_worker()


@pytest.mark.timeout(150)
def test_a_worker_killed_mid_delivery_loses_no_event_and_repeats_none_under_another_id(
    deployment: Deployment,
) -> None:
    with webhook_receiver() as receiver:
        receiver.app.state.delay = 0.2
        added = deployment.ok("webhooks", "add", receiver.url, "--events", "campaign.paused")
        secret = added.stdout.split()[-1]
        assert secret.startswith("whsec_"), added.stdout
        receiver.trust(secret)
        engine = make_engine(deployment.database_url)
        sessions = make_session_factory(engine)
        now = datetime.now(UTC)
        with unit_of_work(sessions) as session:
            for n in range(EVENTS):
                data = CampaignData(campaign_id=n, name=f"campaign {n}", status="PAUSED", at=now)
                record_event(session, EventType.CAMPAIGN_PAUSED, data, now)
        with sessions() as session:
            ids = {f"evt_{number}" for number in session.scalars(select(Event.id))}
        engine.dispose()

        deployment.start_worker()
        eventually(lambda: len(receiver.received) >= 3 or None, what="deliveries under way")
        assert deployment.worker_process is not None
        deployment.worker_process.kill()  # kill -9, a batch half posted
        deployment.worker_process.wait()
        time.sleep(0.5)
        deployment.start_worker()

        def all_handled() -> bool | None:
            return set(receiver.app.state.handled) >= ids or None

        eventually(all_handled, what="every event at the receiver", timeout=120)
        stopping = time.monotonic()
        assert deployment.stop_worker() == 0, deployment.worker_log_tail()
        assert time.monotonic() - stopping < 15, "a claim waiting 20 s for new events does not hold up a SIGTERM"
    received = [message_id for message_id, _ in receiver.received]
    assert set(received) == ids, "none lost, none under another id"
    bodies = {message_id: json.dumps(event, sort_keys=True) for message_id, event in receiver.received}
    assert all(json.dumps(event, sort_keys=True) == bodies[message_id] for message_id, event in receiver.received), (
        "a repeat is the same event"
    )
    order = [int(message_id.removeprefix("evt_")) for message_id in dict.fromkeys(received)]
    assert order == sorted(order), "first deliveries in the order the events happened"
