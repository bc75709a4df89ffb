"""Contacts, lead groups, suppressions, senders and stops, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.contacts_repo import (
    BATCH_SIZE,
    ImportResult,
    add_sender,
    add_suppression,
    count_contacts,
    find_contact_by_email,
    find_contact_by_phone,
    import_contacts,
    list_contacts,
    list_senders,
    stop_contact,
)
from db.engine import unit_of_work
from db.models import (
    Campaign,
    Contact,
    Enrollment,
    LeadGroup,
    LeadGroupMember,
    Sender,
    Step,
    StepExecution,
    Suppression,
)
from domain.contacts_csv import ContactRecord
from schemas.enums import ExecutionStatus, SkipReason
from tests.conftest import Database

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def person(index: int, **fields: object) -> ContactRecord:
    values: dict[str, object] = {"email": f"p{index}@example.com", "first_name": f"P{index}", "company": "Acme"}
    values.update(fields)
    return ContactRecord(line=index + 2, **values)  # type: ignore[arg-type]


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_an_import_creates_the_contacts_and_adds_them_to_the_group(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        result = import_contacts(session, [person(1), person(2, phone="+14155550102")], "Group A", NOW)
    assert result == ImportResult(inserted=2, updated=0, group_members_added=2)
    with db.sessions() as session:
        ann = find_contact_by_email(session, "P2@Example.com")
        assert ann is not None
        assert (ann.phone, ann.first_name, ann.created_at, ann.updated_at) == ("+14155550102", "P2", NOW, NOW)
        assert [contact.email for contact in list_contacts(session, group_name="Group A")] == [
            "p1@example.com",
            "p2@example.com",
        ]


def test_reimporting_the_same_file_changes_nothing(db: Database) -> None:
    rows = [person(index, variables={"pain_point": f"pain {index}"}) for index in range(10)]
    rows.append(ContactRecord(line=99, phone="+14155550199", first_name="Phone only"))
    with unit_of_work(db.sessions) as session:
        first = import_contacts(session, rows, "Group A", NOW)
    with unit_of_work(db.sessions) as session:
        again = import_contacts(session, rows, "Group A", LATER)
    assert first == ImportResult(inserted=11, updated=0, group_members_added=11)
    assert again == ImportResult(inserted=0, updated=11, group_members_added=0)
    with db.sessions() as session:
        assert (count(session, Contact), count(session, LeadGroupMember), count(session, LeadGroup)) == (11, 11, 1)
        contact = find_contact_by_email(session, "p3@example.com")
        assert contact is not None
        assert contact.variables == {"pain_point": "pain 3"}
        assert (contact.created_at, contact.updated_at) == (NOW, LATER)


def test_a_reimport_updates_fields_keeps_values_of_empty_cells_and_merges_variables(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        import_contacts(session, [person(1, title="CEO", variables={"pain_point": "churn", "tier": "A"})], "G", NOW)
        import_contacts(session, [person(1, company="Globex", variables={"tier": "B"})], "G", LATER)
    with db.sessions() as session:
        contact = find_contact_by_email(session, "p1@example.com")
        assert contact is not None
        assert (contact.company, contact.title) == ("Globex", "CEO")
        assert contact.variables == {"pain_point": "churn", "tier": "B"}


def test_a_time_zone_guessed_from_the_phone_never_replaces_a_known_one(db: Database) -> None:
    guess = {"timezone": "America/New_York", "timezone_guessed": True}
    with unit_of_work(db.sessions) as session:
        import_contacts(session, [person(1, timezone="Europe/London"), person(2)], "G", NOW)
        import_contacts(session, [ContactRecord(line=2, phone="+14155550103", timezone="Asia/Tokyo")], "G", NOW)
        import_contacts(session, [person(1, **guess), person(2, **guess)], "G", LATER)
        import_contacts(session, [ContactRecord(line=2, phone="+14155550103", **guess)], "G", LATER)  # type: ignore[arg-type]
    with db.sessions() as session:
        zones = dict(session.execute(select(Contact.first_name, Contact.timezone)).all())
        assert zones == {"P1": "Europe/London", "P2": "America/New_York", None: "Asia/Tokyo"}


def test_a_phone_only_row_updates_the_contact_that_has_that_phone(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        import_contacts(session, [person(1, phone="+14155550101")], "Group A", NOW)
        result = import_contacts(
            session, [ContactRecord(line=2, phone="+14155550101", title="CTO", variables={"k": "v"})], "Group B", NOW
        )
    assert result == ImportResult(inserted=0, updated=1, group_members_added=1)
    with db.sessions() as session:
        [contact] = session.scalars(select(Contact)).all()
        assert (contact.email, contact.title, contact.variables) == ("p1@example.com", "CTO", {"k": "v"})
        assert find_contact_by_phone(session, "(415) 555-0101") == contact


def test_a_contact_repeated_in_one_file_is_stored_once(db: Database) -> None:
    rows = [person(1, title="first"), person(2), person(1, title="second")]
    with unit_of_work(db.sessions) as session:
        result = import_contacts(session, rows, "Group A", NOW)
    assert (result.inserted, result.group_members_added) == (2, 2)
    with db.sessions() as session:
        contact = find_contact_by_email(session, "p1@example.com")
        assert contact is not None
        assert contact.title == "second"


def test_a_contact_in_two_groups_is_one_contact_with_two_memberships(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        import_contacts(session, [person(1), person(2)], "Group A", NOW)
        import_contacts(session, [person(2), person(3)], "Group B", NOW)
    with db.sessions() as session:
        assert (count(session, Contact), count(session, LeadGroupMember)) == (3, 4)
        assert count_contacts(session, group_name="Group B") == 2
        with pytest.raises(LookupError, match="no lead group named 'Group C'"):
            count_contacts(session, group_name="Group C")


def test_five_thousand_rows_import_in_batches_in_well_under_a_few_seconds(db: Database) -> None:
    rows = [person(index, variables={"n": str(index)}) for index in range(4_500)]
    rows += [ContactRecord(line=index, phone=f"+1415555{index:04d}") for index in range(500)]
    assert len(rows) > 4 * BATCH_SIZE
    started = time.perf_counter()
    with unit_of_work(db.sessions) as session:
        first = import_contacts(session, rows, "Big", NOW)
    with unit_of_work(db.sessions) as session:
        again = import_contacts(session, rows, "Big", LATER)
    elapsed = time.perf_counter() - started
    assert first == ImportResult(inserted=5_000, updated=0, group_members_added=5_000)
    assert again == ImportResult(inserted=0, updated=5_000, group_members_added=0)
    assert elapsed < 10, f"two 5,000-row imports took {elapsed:.1f}s"


@pytest.mark.parametrize(
    ("value", "kind", "stored"),
    [
        (" Ann@Example.COM ", "email", "ann@example.com"),
        ("(415) 555-0101", "phone", "+14155550101"),
        ("@Competitor.example", "domain", "competitor.example"),
    ],
)
def test_suppressions_are_normalised_and_idempotent(db: Database, value: str, kind: str, stored: str) -> None:
    with unit_of_work(db.sessions) as session:
        add_suppression(session, value, "asked to stop", NOW)
        again = add_suppression(session, value.upper() if kind != "phone" else value, "again", LATER)
    assert (again.kind, again.value, again.reason) == (kind, stored, "asked to stop")
    with db.sessions() as session:
        assert count(session, Suppression) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12", "'12' is neither an email, a phone number nor an @domain"),
        ("ann@", "email 'ann@' is not a valid email address"),
        ("@nodot", "'@nodot' is not a valid domain"),
    ],
)
def test_an_invalid_suppression_is_refused_with_the_reason(db: Database, value: str, message: str) -> None:
    with db.sessions() as session, pytest.raises(ValueError, match=message):
        add_suppression(session, value, "x", NOW)


def test_re_adding_a_sender_updates_it_instead_of_duplicating(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        first = add_sender(session, "email", "Sales@Outbound.example", "outbox", 50, "UTC", NOW)
        again = add_sender(session, "email", "sales@outbound.example", "outbox", 200, "Europe/Berlin", LATER)
        add_sender(session, "sms", "+1 500 555 0006", "outbox", 100, "UTC", NOW)
        add_sender(session, "voicemail", "+15005550006", "outbox", 100, "UTC", NOW)
    assert again.id == first.id
    assert (again.address, again.daily_limit, again.timezone, again.created_at) == (
        "sales@outbound.example",
        200,
        "Europe/Berlin",
        NOW,
    )
    with db.sessions() as session:
        assert [(s.channel, s.address) for s in list_senders(session)] == [
            ("email", "sales@outbound.example"),
            ("sms", "+15005550006"),
            ("voicemail", "+15005550006"),
        ]


@pytest.mark.parametrize(
    ("channel", "address", "provider", "limit", "timezone", "message"),
    [
        ("fax", "a@example.com", "outbox", 1, "UTC", "unknown channel 'fax'"),
        ("email", "+15005550006", "outbox", 1, "UTC", "is not a valid email address"),
        ("sms", "sales@outbound.example", "outbox", 1, "UTC", "needs a phone number in E.164 form"),
        ("sms", "+1500", "outbox", 1, "UTC", "is not a valid phone number"),
        ("email", "a@example.com", "carrier-pigeon", 1, "UTC", "unknown provider 'carrier-pigeon'"),
        ("email", "a@example.com", "outbox", 0, "UTC", "daily_limit must be at least 1"),
        ("email", "a@example.com", "outbox", 1, "Mars/Base", "unknown time zone 'Mars/Base'"),
    ],
)
def test_an_invalid_sender_is_refused(
    db: Database, channel: str, address: str, provider: str, limit: int, timezone: str, message: str
) -> None:
    with db.sessions() as session, pytest.raises(ValueError, match=message):
        add_sender(session, channel, address, provider, limit, timezone, NOW)
    with db.sessions() as session:
        assert count(session, Sender) == 0


def _campaign_with_executions(session: Session) -> tuple[int, int, dict[str, int]]:
    """Two contacts; the first has one execution in each status, the other one SCHEDULED."""
    import_contacts(session, [person(1), person(2)], "Group A", NOW)
    ann, bob = (find_contact_by_email(session, f"p{index}@example.com") for index in (1, 2))
    assert ann is not None
    assert bob is not None
    campaign = Campaign(name="C", timezone="UTC", definition={}, status="ACTIVE", created_at=NOW)
    session.add(campaign)
    session.flush()
    statuses = ["SCHEDULED", "QUEUED", "SENDING", "SENT", "SCHEDULED"]
    steps = [Step(campaign_id=campaign.id, position=position, channel="email") for position in range(1, 6)]
    session.add_all(steps)
    session.add_all(Enrollment(campaign_id=campaign.id, contact_id=c.id, enrolled_at=NOW) for c in (ann, bob))
    session.flush()
    executions = {}
    for step, status in zip(steps[:4], statuses, strict=False):
        execution = StepExecution(campaign_id=campaign.id, step_id=step.id, contact_id=ann.id, status=status)
        session.add(execution)
        session.flush()
        executions[status] = execution.id
    session.add(StepExecution(campaign_id=campaign.id, step_id=steps[0].id, contact_id=bob.id, status="SCHEDULED"))
    return ann.id, bob.id, executions


def test_stopping_a_contact_skips_its_pending_messages_but_lets_a_send_in_progress_finish(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        ann, bob, executions = _campaign_with_executions(session)
    with unit_of_work(db.sessions) as session:
        assert stop_contact(session, ann, SkipReason.REPLIED, LATER) == 2
    with db.sessions() as session:
        rows = {row.id: row for row in session.scalars(select(StepExecution))}
        assert {status: rows[id_].status for status, id_ in executions.items()} == {
            "SCHEDULED": ExecutionStatus.SKIPPED,
            "QUEUED": ExecutionStatus.SKIPPED,
            "SENDING": ExecutionStatus.SENDING,
            "SENT": ExecutionStatus.SENT,
        }
        assert rows[executions["QUEUED"]].skip_reason == "replied"
        contact = session.get(Contact, ann)
        assert contact is not None
        assert (contact.stopped_reason, contact.stopped_at) == ("replied", LATER)
        enrollments = dict(session.execute(select(Enrollment.contact_id, Enrollment.status)).all())
        assert enrollments == {ann: "stopped", bob: "active"}
        assert session.scalar(select(StepExecution.status).where(StepExecution.contact_id == bob)) == "SCHEDULED"


def test_stopping_a_contact_twice_keeps_the_first_reason_and_skips_nothing_more(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        ann, _bob, _executions = _campaign_with_executions(session)
        stop_contact(session, ann, SkipReason.REPLIED, NOW)
    with unit_of_work(db.sessions) as session:
        assert stop_contact(session, ann, SkipReason.BOUNCED, LATER) == 0
    with db.sessions() as session:
        contact = session.get(Contact, ann)
        assert contact is not None
        assert (contact.stopped_reason, contact.stopped_at) == ("replied", NOW)


def test_stopping_an_unknown_contact_is_an_error(db: Database) -> None:
    with db.sessions() as session, pytest.raises(LookupError, match="contact 999 does not exist"):
        stop_contact(session, 999, SkipReason.REPLIED, NOW)
