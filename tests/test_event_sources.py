"""Every change the app hears of writes its event where the change is made (DESIGN W1): a
dead letter (`message.failed`), a Twilio status callback (`message.delivery`), a bounce,
an opt-out by link or SMS STOP and an opt-in by START (`contact.*`), a campaign's pause,
resume and cancel (`campaign.*`), a mailbox paused or disabled (`mailbox.*`). Each body
names what the app acts on without calling back (the contact's address, the campaign, the
ids), and a repeated change tells nothing new. SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from activities.campaign import CampaignActivities
from db.engine import unit_of_work
from db.inbound import ingest_email
from db.mailboxes import disable_sender, note_throttling
from db.models import Contact, Sender, Step, StepExecution
from db.sending import dead_letter
from db.webhook_events import receive_sms, record_delivery_status, unsubscribe
from domain.unsubscribe_tokens import UnsubscribeClaim
from runtime.settings import MailboxPauseSettings
from schemas.activity_io import LifecycleInput, PrepareCampaignInput
from schemas.enums import CampaignStatus, ExecutionStatus
from tests.conftest import Database
from tests.support import EMAIL_SENDER, PHONE_SENDER, THREE_STEPS, campaign_spec, people, seed
from tests.test_events import events

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
BOUNCE = Path(__file__).parent / "samples" / "inbound" / "gmail_hard_bounce_5_1_1.eml"
SOFT_BOUNCE = Path(__file__).parent / "samples" / "inbound" / "postfix_soft_bounce_4_2_2.eml"


@dataclass
class Sent:
    """One contact in a three-step campaign (email, SMS, voicemail): the email and the text
    went out (a Message-ID, a Twilio SID); the voicemail still waits."""

    db: Database
    campaign_id: int
    contact: dict[str, Any]  # as an event's body names the contact
    email: int
    sms: int
    voicemail: int
    senders: dict[str, int]  # channel -> sender id

    def key(self) -> str:
        """The Message-ID of the email that went out."""
        return f"<outbound.{self.campaign_id}.{self.email}@outbound.example>"


@pytest.fixture
def sent(db: Database) -> Sent:
    campaign = seed(db.sessions, campaign_spec(THREE_STEPS), {"A": people("a", 1)})
    with unit_of_work(db.sessions) as session:
        contact = session.scalars(select(Contact)).one()
        senders = {channel: id_ for channel, id_ in session.execute(select(Sender.channel, Sender.id))}
        rows = []
        for step in session.scalars(select(Step).where(Step.campaign_id == campaign).order_by(Step.position)):
            row = StepExecution(
                campaign_id=campaign,
                step_id=step.id,
                contact_id=contact.id,
                sender_id=senders[step.channel],
                status=ExecutionStatus.SCHEDULED.value,
                scheduled_for=NOW + timedelta(days=step.position),
            )
            session.add(row)
            session.flush()
            rows.append(row)
        email, sms, voicemail = rows
        for row, provider_id in ((email, f"gmail-{email.id}"), (sms, "SM0001")):
            row.status = ExecutionStatus.SENT.value
            row.sent_at = NOW - timedelta(hours=2)
            row.provider_message_id = provider_id
        email.message_key = f"<outbound.{campaign}.{email.id}@outbound.example>"
        ref = {"id": contact.id, "email": contact.email, "phone": contact.phone}
    return Sent(db, campaign, ref, email.id, sms.id, voicemail.id, senders)


def at(event: dict[str, Any], key: str = "at") -> datetime:
    """A time in an event's body (JSON, ISO 8601), taken out of it."""
    return datetime.fromisoformat(event.pop(key))


# --- message.* --------------------------------------------------------------------------------


def test_a_dead_letter_tells_the_app_which_message_failed_why_and_after_how_many_attempts(sent: Sent) -> None:
    with unit_of_work(sent.db.sessions) as session:
        session.execute(update(StepExecution).where(StepExecution.id == sent.voicemail).values(status="SENDING"))
        dead_letter(session, sent.voicemail, "ProviderRejected", "21211: invalid 'To' number", 3, NOW)
    with unit_of_work(sent.db.sessions) as session:
        assert dead_letter(session, sent.voicemail, "ProviderRejected", "again", 4, NOW) is None, "already FAILED"

    assert events(sent.db) == [
        {
            "type": "message.failed", "message_id": sent.voicemail, "campaign_id": sent.campaign_id, "step": 3,
            "channel": "voicemail", "contact": sent.contact, "sender": PHONE_SENDER,
            "error_type": "ProviderRejected", "error": "21211: invalid 'To' number", "attempts": 3,
        }
    ], "once, naming the message, its contact and the failure"  # fmt: skip


def delivery(sent: Sent, status: str | None, *, sid: str = "SM0001", answered_by: str | None = None) -> bool:
    with unit_of_work(sent.db.sessions) as session:
        return record_delivery_status(
            session, provider_sid=sid, status=status, error_code=None, answered_by=answered_by, now=NOW
        )


def test_a_twilio_status_that_moves_the_message_up_its_ladder_tells_the_app_and_a_late_or_repeated_one_does_not(
    sent: Sent,
) -> None:
    assert delivery(sent, "sent")
    assert delivery(sent, "Delivered")
    assert delivery(sent, "sent"), "a late `sent` after `delivered`: known SID, nothing moves"
    assert delivery(sent, "delivered"), "a redelivered callback"
    assert delivery(sent, None, answered_by="human"), "no status, nothing to tell"
    assert not delivery(sent, "delivered", sid="SM-unknown")

    told = events(sent.db, "message.delivery")
    assert [event["delivery_status"] for event in told] == ["sent", "delivered"]
    assert told[-1] == {
        "type": "message.delivery", "message_id": sent.sms, "campaign_id": sent.campaign_id, "step": 2,
        "channel": "sms", "contact": sent.contact, "sender": PHONE_SENDER, "provider_message_id": "SM0001",
        "sent_at": told[-1]["sent_at"], "delivery_status": "delivered",
    }  # fmt: skip
    assert datetime.fromisoformat(told[-1]["sent_at"]) == NOW - timedelta(hours=2)


# --- contact.* --------------------------------------------------------------------------------


def ingest(sent: Sent, raw: bytes, message_id: str, *, threshold: int = 3) -> None:
    with unit_of_work(sent.db.sessions) as session:
        ingest_email(
            session, mailbox_sender_id=sent.senders["email"], provider_message_id=message_id, thread_id=None,
            received_at=NOW, raw=raw, now=NOW, soft_bounce_threshold=threshold,
        )  # fmt: skip


def test_a_hard_bounce_tells_the_app_the_contact_bounced_on_which_message_of_which_campaign(sent: Sent) -> None:
    raw = BOUNCE.read_bytes().replace(b"<outbound.7.42@outbound.example>", sent.key().encode())
    ingest(sent, raw, "gmail-b1")
    ingest(sent, raw, "gmail-b1")  # the sync sees it again

    [bounced] = events(sent.db)
    assert at(bounced) == NOW
    assert bounced == {
        "type": "contact.bounced", "contact": sent.contact, "reason": "bounced", "source": "gmail",
        "campaign_id": sent.campaign_id, "message_id": sent.email, "stopped_messages": 1,
    }, "the voicemail will not go out"  # fmt: skip


def test_soft_bounces_tell_the_app_only_at_the_threshold_when_they_stop_the_contact(sent: Sent) -> None:
    raw = SOFT_BOUNCE.read_bytes().replace(b"<outbound.7.47@outbound.example>", sent.key().encode())
    ingest(sent, raw, "gmail-soft-1", threshold=2)
    assert events(sent.db) == [], "one soft bounce stops nothing"

    ingest(sent, raw, "gmail-soft-2", threshold=2)
    [bounced] = events(sent.db)
    assert (bounced["type"], bounced["contact"], bounced["message_id"]) == ("contact.bounced", sent.contact, sent.email)


def click(sent: Sent) -> bool:
    claim = UnsubscribeClaim(contact_id=sent.contact["id"], execution_id=sent.email, expires_at=NOW + timedelta(days=1))
    with unit_of_work(sent.db.sessions) as session:
        return unsubscribe(session, claim, NOW)


def text(sent: Sent, sid: str, body: str) -> None:
    with unit_of_work(sent.db.sessions) as session:
        receive_sms(
            session, message_sid=sid, from_phone=sent.contact["phone"], to_phone=PHONE_SENDER, body=body, now=NOW
        )


def test_an_unsubscribe_link_tells_the_app_once_that_the_contact_unsubscribed_by_link(sent: Sent) -> None:
    assert click(sent)
    assert click(sent), "a second click finds it done"
    text(sent, "SM-in-1", "STOP")  # and a later STOP is not a second opt-out

    [unsubscribed] = events(sent.db)
    assert at(unsubscribed) == NOW
    assert unsubscribed == {
        "type": "contact.unsubscribed", "contact": sent.contact, "reason": "unsubscribed", "source": "link",
        "stopped_messages": 1,
    }  # fmt: skip


def test_an_sms_stop_tells_the_app_once_that_the_contact_unsubscribed_by_twilio(sent: Sent) -> None:
    text(sent, "SM-in-1", "STOP")
    text(sent, "SM-in-1", "STOP")  # Twilio redelivers the webhook
    text(sent, "SM-in-2", "unsubscribe")  # a second opt-out
    assert click(sent)

    [unsubscribed] = events(sent.db)
    assert at(unsubscribed) == NOW
    assert unsubscribed == {
        "type": "contact.unsubscribed", "contact": sent.contact, "reason": "unsubscribed", "source": "twilio",
        "stopped_messages": 1,
    }  # fmt: skip


def test_an_sms_start_after_a_stop_tells_the_app_the_contact_resubscribed(sent: Sent) -> None:
    text(sent, "SM-in-1", "STOP")
    text(sent, "SM-in-2", "START")
    text(sent, "SM-in-2", "START")  # Twilio redelivers the webhook

    [resubscribed] = events(sent.db, "contact.resubscribed")
    assert at(resubscribed) == NOW
    assert resubscribed == {
        "type": "contact.resubscribed", "contact": sent.contact, "reason": "resubscribed", "source": "twilio",
        "stopped_messages": 0,
    }  # fmt: skip
    text(sent, "SM-in-3", "STOP")
    assert [event["type"] for event in events(sent.db)] == [
        "contact.unsubscribed",
        "contact.resubscribed",
        "contact.unsubscribed",
    ], "opted back in, a new STOP is a new opt-out"


# --- campaign.* -------------------------------------------------------------------------------


def test_a_campaign_paused_resumed_and_cancelled_tells_the_app_each_change_once(sent: Sent) -> None:
    campaigns = CampaignActivities(sent.db.sessions)
    campaigns.prepare_campaign(PrepareCampaignInput(campaign_id=sent.campaign_id, now=NOW, start_at=NOW, version=1))
    hour = timedelta(hours=1)

    def apply(state: CampaignStatus, version: int, now: datetime, paused_at: datetime | None = None) -> None:
        campaigns.apply_lifecycle(
            LifecycleInput(campaign_id=sent.campaign_id, state=state, version=version, now=now, paused_at=paused_at)
        )

    apply(CampaignStatus.PAUSED, 2, NOW + hour)
    apply(CampaignStatus.PAUSED, 2, NOW + hour)  # the activity retried
    apply(CampaignStatus.ACTIVE, 3, NOW + 2 * hour, paused_at=NOW + hour)
    apply(CampaignStatus.PAUSED, 2, NOW + 3 * hour)  # a late, older decision
    apply(CampaignStatus.CANCELLED, 4, NOW + 4 * hour)

    told = [event for event in events(sent.db) if event["type"] != "campaign.launched"]
    assert [(event["type"], event["status"], at(event)) for event in told] == [
        ("campaign.paused", "PAUSED", NOW + hour),
        ("campaign.resumed", "ACTIVE", NOW + 2 * hour),
        ("campaign.cancelled", "CANCELLED", NOW + 4 * hour),
    ]
    assert all(event == {"type": event["type"], "campaign_id": sent.campaign_id, "name": "Test campaign",
                         "status": event["status"]} for event in told)  # fmt: skip


# --- mailbox.* --------------------------------------------------------------------------------


def test_the_failure_that_pauses_a_mailbox_tells_the_app_until_when_and_why(sent: Sent) -> None:
    policy = MailboxPauseSettings(after_failures=3, within_seconds=60, pause_seconds=600)
    mailbox = sent.senders["email"]
    for second in range(5):  # the third pauses it; the two after it meet it paused
        with unit_of_work(sent.db.sessions) as session:
            note_throttling(session, mailbox, NOW + timedelta(seconds=second), policy)

    [paused] = events(sent.db)
    assert at(paused) == NOW + timedelta(seconds=2)
    assert at(paused, "paused_until") == NOW + timedelta(seconds=602)
    assert paused == {
        "type": "mailbox.paused", "sender_id": mailbox, "address": EMAIL_SENDER,
        "reason": "3 rate limits or provider errors within 60 s",
    }  # fmt: skip


def test_a_disabled_mailbox_tells_the_app_once_with_the_first_reason(sent: Sent) -> None:
    mailbox = sent.senders["email"]
    with unit_of_work(sent.db.sessions) as session:
        assert disable_sender(session, mailbox, "invalid_grant: Token has been revoked", NOW)
    with unit_of_work(sent.db.sessions) as session:
        assert not disable_sender(session, mailbox, "another reason", NOW + timedelta(hours=1))

    [disabled] = events(sent.db)
    assert at(disabled) == NOW
    assert disabled == {
        "type": "mailbox.disabled", "sender_id": mailbox, "address": EMAIL_SENDER,
        "reason": "invalid_grant: Token has been revoked",
    }  # fmt: skip
