"""Creating a campaign: everything it names must exist, templates must fit its contacts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.campaigns_repo import CampaignCreateError, create_campaign, custom_variables
from db.contacts_repo import add_sender, ensure_lead_group, import_contacts
from db.engine import unit_of_work
from db.models import Campaign, CampaignLeadGroup, CampaignSender, Sender, Step
from domain.campaign_yaml import load_campaign_file
from domain.contacts_csv import ContactRecord, open_contacts_csv
from schemas.campaign_file import CampaignFile
from tests.conftest import Database

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EMAIL = "sales@outbound.example"
PHONE = "+15005550006"


def spec(**overrides: Any) -> CampaignFile:
    data: dict[str, Any] = {
        "name": "Spring outreach",
        "timezone": "America/New_York",
        "lead_groups": ["Group A", "Group B"],
        "senders": {"email": [EMAIL], "sms": [PHONE]},
        "postal_address": "Outbound Test Ltd, 1 Test Street, Springfield, 12345, USA",
        "steps": [
            {"channel": "email", "subject": "Hi {{ first_name }}", "body": "About {{ pain_point }}"},
            {"channel": "sms", "wait": "1d2h", "body": "Following up, {{ company | default('') }}"},
            {"channel": "email", "day": 3, "subject": "Re", "body": "Bump", "new_thread": True},
        ],
    }
    data.update(overrides)
    return CampaignFile.model_validate(data)


def seed(session: Session) -> None:
    """Two lead groups (the first with a `pain_point` column) and the senders."""
    contact = ContactRecord(line=2, email="ann@example.com", first_name="Ann", variables={"pain_point": "churn"})
    import_contacts(session, [contact], "Group A", NOW)
    import_contacts(session, [ContactRecord(line=2, email="bob@example.com", variables={"tier": "A"})], "Group B", NOW)
    ensure_lead_group(session, "Empty group")
    add_sender(session, "email", EMAIL, "outbox", 100, "UTC", NOW)
    add_sender(session, "sms", PHONE, "outbox", 100, "UTC", NOW)


def nothing_was_written(db: Database) -> bool:
    with db.sessions() as session:
        tables = (Campaign, Step, CampaignLeadGroup, CampaignSender)
        return all(session.scalar(select(func.count()).select_from(table)) == 0 for table in tables)


def create_failing(db: Database, campaign: CampaignFile) -> list[str]:
    with pytest.raises(CampaignCreateError) as raised, unit_of_work(db.sessions) as session:
        create_campaign(session, campaign, NOW)
    assert nothing_was_written(db)
    return raised.value.problems


def test_a_campaign_is_created_as_a_draft_with_its_steps_groups_and_senders(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        seed(session)
        campaign_id = create_campaign(session, spec(), NOW)
    with db.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        assert (campaign.name, campaign.status, campaign.timezone, campaign.created_at) == (
            "Spring outreach",
            "DRAFT",
            "America/New_York",
            NOW,
        )
        assert CampaignFile.model_validate(campaign.definition) == spec()
        steps = session.scalars(select(Step).where(Step.campaign_id == campaign_id).order_by(Step.position)).all()
        assert [(s.position, s.channel, s.day, s.wait_days, s.wait_seconds, s.new_thread) for s in steps] == [
            (1, "email", 0, 0, 0, False),
            (2, "sms", 0, 1, 7200, False),
            (3, "email", 3, 0, 0, True),
        ]
        assert steps[0].subject == "Hi {{ first_name }}"
        groups = session.scalars(select(CampaignLeadGroup.group_id).where(CampaignLeadGroup.campaign_id == campaign_id))
        assert len(groups.all()) == 2
        senders = session.scalars(
            select(Sender.channel).join(CampaignSender, CampaignSender.sender_id == Sender.id).order_by(Sender.channel)
        )
        assert senders.all() == ["email", "sms"]


def test_an_unknown_lead_group_is_named_and_nothing_is_written(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        seed(session)
    problems = create_failing(db, spec(lead_groups=["Group A", "Group Z"]))
    assert problems == [
        "lead_groups[1]: there is no lead group named 'Group Z'"
        " (create it with `outbound contacts import FILE.csv --group NAME`)"
    ]


def test_an_unregistered_or_paused_sender_is_named_and_nothing_is_written(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        seed(session)
        session.execute(Sender.__table__.update().where(Sender.channel == "sms").values(status="paused"))
    problems = create_failing(db, spec(senders={"email": [EMAIL, "other@outbound.example"], "sms": [PHONE]}))
    assert [problem.split(" (add it")[0] for problem in problems] == [
        "senders.email[1]: 'other@outbound.example' is not a registered active email sender",
        "senders.sms[0]: '+15005550006' is not a registered active sms sender",
    ]


def test_a_sender_is_found_however_its_address_is_written(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        seed(session)
        create_campaign(session, spec(senders={"email": ["Sales@Outbound.Example"], "sms": [PHONE]}), NOW)


def test_a_template_variable_no_contact_of_the_groups_has_is_rejected(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        seed(session)
    steps = [{"channel": "email", "subject": "Hi", "body": "{{ pain_point }} {{ favourite_color }}"}]
    problems = create_failing(db, spec(steps=steps, lead_groups=["Group A"]))
    assert [problem.split(" (known")[0] for problem in problems] == ["steps[0].body: 'favourite_color' is undefined"]


def test_template_variables_come_only_from_the_campaigns_own_groups(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        seed(session)
    problems = create_failing(db, spec(lead_groups=["Group B"]))
    assert [problem.split(" (known")[0] for problem in problems] == ["steps[0].body: 'pain_point' is undefined"]
    with db.sessions() as session:
        groups = [ensure_lead_group(session, name) for name in ("Group A", "Group B", "Empty group")]
        assert custom_variables(session, groups) == {"pain_point", "tier"}
        assert custom_variables(session, groups[2:]) == set()


def test_the_demo_campaign_can_be_created_from_the_example_files(db: Database) -> None:
    with unit_of_work(db.sessions) as session:
        for group, name in (("Group A", "leads-a.csv"), ("Group B", "leads-b.csv")):
            with open_contacts_csv(EXAMPLES / name) as rows:
                import_contacts(session, (row for row in rows if isinstance(row, ContactRecord)), group, NOW)
        for channel, address in (("email", EMAIL), ("sms", PHONE), ("voicemail", PHONE)):
            add_sender(session, channel, address, "outbox", 200, "UTC", NOW)
        campaign_id = create_campaign(session, load_campaign_file(EXAMPLES / "demo-campaign.yaml"), NOW)
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Step).where(Step.campaign_id == campaign_id)) == 3
        assert session.scalar(select(func.count()).select_from(CampaignSender)) == 3
