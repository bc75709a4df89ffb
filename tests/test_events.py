"""Events for the app (DESIGN W1): each written in the transaction of the change it
reports (roll the change back: no event), once per change, with the body the app reads;
positions follow the order events became visible, whatever order their ids were given in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from db.contacts_repo import stop_contact
from db.engine import unit_of_work
from db.events import assign_positions, record_event
from db.jobs import NewJob, complete, enqueue, finish
from db.models import Contact, Event
from schemas.enums import SkipReason
from schemas.events import CampaignData, EventType
from schemas.jobs import JobStatus
from tests.conftest import Database
from tests.support import THREE_STEPS, Outbound, campaign_spec, people, seed

pytestmark = pytest.mark.timeout(120)


def events(db: Database | Outbound, kind: str | None = None) -> list[dict[str, Any]]:
    with db.sessions() as session:
        query = select(Event).order_by(Event.id)
        if kind is not None:
            query = query.where(Event.type == kind)
        return [{"type": row.type, **row.data} for row in session.scalars(query)]


async def test_a_campaign_tells_the_app_it_launched_each_message_sent_each_step_finished_and_that_it_completed(
    outbound: Outbound,
) -> None:
    campaign = seed(outbound.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 3)})
    async with outbound.worker():
        await (await outbound.launch(campaign)).result()

    kinds = [event["type"] for event in events(outbound)]
    assert (kinds[0], kinds[-1]) == ("campaign.launched", "campaign.completed")
    assert (kinds.count("message.sent"), kinds.count("step.finished")) == (9, 3)
    sent = events(outbound, "message.sent")
    assert {(event["step"], event["contact"]["email"]) for event in sent if event["channel"] == "email"} == {
        (1, f"a{n}@example.com") for n in range(3)
    }, "the body names the contact the message went to"
    assert all(event["campaign_id"] == campaign and event["provider_message_id"] for event in sent)
    finished = events(outbound, "step.finished")
    assert [event["step"] for event in finished] == [1, 2, 3]
    assert all(event["counts"] == {"SENT": 3} for event in finished)


def test_a_stop_rolled_back_leaves_no_event_and_a_second_stop_tells_nothing_new(db: Database) -> None:
    seed(db.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 1)})
    with db.sessions() as session:
        contact_id = session.scalars(select(Contact.id)).one()
    now = datetime.now(UTC)
    with db.sessions() as session, session.begin():
        stop_contact(session, contact_id, SkipReason.REPLIED, now, source="cli")
        session.rollback()
    assert events(db) == [], "the change rolled back: no event"

    with unit_of_work(db.sessions) as session:
        stop_contact(session, contact_id, SkipReason.REPLIED, now, source="cli")
    with unit_of_work(db.sessions) as session:
        stop_contact(session, contact_id, SkipReason.BOUNCED, now, source="gmail")
    [replied] = events(db)
    assert replied["type"] == "contact.replied"
    assert replied["contact"] == {"id": contact_id, "email": "a0@example.com", "phone": "+12025550000"}
    assert (replied["reason"], replied["source"]) == ("replied", "cli")


def test_a_job_that_ends_tells_the_app_once(db: Database) -> None:
    now = datetime.now(UTC)
    with unit_of_work(db.sessions) as session:
        done, _ = enqueue(session, NewJob("enrich", "ok-1", {"a": 1}, priority=3, attempts=3, name="company"), now)
        failed, _ = enqueue(session, NewJob("enrich", "bad-1", {}, priority=3, attempts=3), now)
    with unit_of_work(db.sessions) as session:
        assert complete(session, done, {"size": 40}, None, 1, now)
        assert finish(session, failed, JobStatus.FAILED, "HTTP 422: refused", now)
    with unit_of_work(db.sessions) as session:
        assert not complete(session, done, {"size": 41}, None, 2, now), "a job ends once"
    completed, failure = events(db)
    assert completed == {
        "type": "job.completed", "job_id": "ok-1", "queue": "enrich", "name": "company", "status": "completed",
        "attempts_made": 1, "result": {"size": 40}, "at": completed["at"],
    }  # fmt: skip
    assert (failure["type"], failure["job_id"], failure["error"]) == ("job.failed", "bad-1", "HTTP 422: refused")


def test_an_event_body_must_be_the_model_its_type_documents(db: Database) -> None:
    wrong = CampaignData(campaign_id=1, name="x", status="ACTIVE", at=datetime.now(UTC))
    with db.sessions() as session, pytest.raises(TypeError, match=r"contact\.replied carries ContactData"):
        record_event(session, EventType.CONTACT_REPLIED, wrong, datetime.now(UTC))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_event_committed_after_a_later_id_still_gets_a_position_after_those_already_read(db: Database) -> None:
    now = datetime.now(UTC)
    data = CampaignData(campaign_id=1, name="x", status="ACTIVE", at=now)
    slow = db.sessions()
    slow.begin()
    record_event(slow, EventType.CAMPAIGN_LAUNCHED, data, now)  # the lower id, not committed yet
    slow.flush()
    with unit_of_work(db.sessions) as session:
        record_event(session, EventType.CAMPAIGN_PAUSED, data, now)
    with unit_of_work(db.sessions) as session:
        assert assign_positions(session) == 1, "only what is committed gets a position"
    slow.commit()
    slow.close()
    with unit_of_work(db.sessions) as session:
        assert assign_positions(session) == 1
    with db.sessions() as session:
        rows = session.execute(select(Event.type, Event.position).order_by(Event.position)).all()
    assert [tuple(row) for row in rows] == [("campaign.paused", 1), ("campaign.launched", 2)], (
        "a reader at position 1 still reads the late one"
    )
