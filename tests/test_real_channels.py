"""Campaigns through the real provider SDKs (Gmail API, Twilio) against HTTP-level fakes.

The worker is wired exactly as in production (`default_providers`: stored, encrypted
mailbox grants; the Twilio account from settings); only the providers' base URLs point
at the fakes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from db.contacts_repo import add_sender
from db.engine import unit_of_work
from db.mailboxes import connect_gmail_mailbox, disable_sender
from db.models import Contact, InboundMessage, MailboxSync, Sender, StepExecution, Suppression
from domain.unsubscribe_tokens import verify_unsubscribe
from runtime.search_attributes import register_search_attributes
from runtime.secrets import SecretBox, new_secret_key
from runtime.temporal import DATA_CONVERTER
from schemas.enums import CampaignStatus
from schemas.inbound_io import MailboxState, SyncMailboxResult
from schemas.signals import CANCEL, CancelSignal
from starter.client import OutboundClient
from tests.conftest import Database
from tests.fakes.gmail_fake import SENDING_LIMIT, FakeGmail
from tests.fakes.twilio_fake import TwilioFake
from tests.support import (
    EMAIL_SENDER,
    PHONE_SENDER,
    Outbound,
    campaign_spec,
    closed_result,
    people,
    seed,
    start_of_a_day,
)

pytestmark = pytest.mark.timeout(180)

PUBLIC_URL = "https://outbound.example.com"
FIRST_EMAIL = {"channel": "email", "subject": "Hi {{ first_name }}", "body": "Hello {{ first_name }}"}
# A follow-up in the same thread needs no subject: it replies under the first one's.
FOLLOW_UP = {"channel": "email", "wait": "2d", "body": "Following up"}


@pytest.fixture
def gmail() -> Iterator[FakeGmail]:
    with FakeGmail() as fake:
        fake.add_account(EMAIL_SENDER)
        yield fake
        fake.assert_clean()


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake
        assert not fake.errors, fake.errors


def connect_mailbox(outbound: Outbound, gmail: FakeGmail) -> None:
    """What `outbound senders add-gmail` stores: the grant, encrypted with the deployment key."""
    account = gmail.mailbox(EMAIL_SENDER).account
    grant = {
        "client_id": account.client_id,
        "client_secret": account.client_secret,
        "refresh_token": account.refresh_token,
    }
    with unit_of_work(outbound.sessions) as session:
        connect_gmail_mailbox(
            session,
            address=EMAIL_SENDER,
            credentials_encrypted=SecretBox(outbound.settings.secret_key).encrypt(grant),
            daily_limit=1000,
            timezone="UTC",
            now=datetime.now(UTC),
        )


def use_gmail(outbound: Outbound, gmail: FakeGmail) -> None:
    outbound.overrides |= {
        "secret_key": SecretStr(new_secret_key()),
        "gmail": gmail.settings(lookup_grace_seconds=0),
        "public_base_url": PUBLIC_URL,
    }


async def test_email_steps_go_through_gmail_in_one_thread_with_one_click_unsubscribe(
    outbound: Outbound, gmail: FakeGmail
) -> None:
    use_gmail(outbound, gmail)
    campaign = seed(outbound.sessions, campaign_spec([FIRST_EMAIL, FOLLOW_UP]), {"A": people("a", 3)})
    connect_mailbox(outbound, gmail)

    async with outbound.worker():
        progress = await (await outbound.launch(campaign)).result()

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    sent = gmail.sent(EMAIL_SENDER)
    assert len(sent) == 6, "two emails for each of three contacts, none twice"
    threads: dict[str, list] = {}
    for message in sent:
        threads.setdefault(str(message.mail["To"]), []).append(message)
    key = SecretBox(outbound.settings.secret_key).signing_key("unsubscribe")
    for first, follow_up in threads.values():
        assert follow_up.thread_id == first.thread_id, "the follow-up continues the first email's Gmail thread"
        assert str(follow_up.mail["In-Reply-To"]) == str(first.mail["Message-ID"])
        assert str(first.mail["Message-ID"]) in str(follow_up.mail["References"])
        assert str(first.mail["Subject"]).startswith("Hi ")
        assert str(follow_up.mail["Subject"]) == f"Re: {first.mail['Subject']}"
        for message in (first, follow_up):
            assert message.mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            link = re.fullmatch(rf"<{PUBLIC_URL}/unsubscribe/(\S+)>", str(message.mail["List-Unsubscribe"]))
            assert link is not None
            claim = verify_unsubscribe(key, link.group(1), datetime.now(UTC))
            assert claim.contact_id == outbound.contact_id(str(message.mail["To"]))
    with outbound.sessions() as session:
        rows = session.execute(
            select(StepExecution.provider_message_id, StepExecution.provider_thread_id, StepExecution.message_key)
        ).all()
    gmail_ids = {message.id: message for message in sent}
    for gmail_id, thread_id, message_key in rows:
        assert gmail_ids[gmail_id].thread_id == thread_id
        assert message_key == str(gmail_ids[gmail_id].mail["Message-ID"]), "the Message-ID Gmail kept is stored"


async def test_follow_ups_reference_the_message_id_gmail_kept(outbound: Outbound, gmail: FakeGmail) -> None:
    gmail.replace_message_ids = True  # Gmail sometimes stores a Message-ID of its own
    use_gmail(outbound, gmail)
    campaign = seed(outbound.sessions, campaign_spec([FIRST_EMAIL, FOLLOW_UP]), {"A": people("a", 1)})
    connect_mailbox(outbound, gmail)

    async with outbound.worker():
        await (await outbound.launch(campaign)).result()

    first, follow_up = sorted(gmail.sent(EMAIL_SENDER), key=lambda message: message.sequence)
    assert str(follow_up.mail["In-Reply-To"]) == str(first.mail["Message-ID"])
    assert follow_up.thread_id == first.thread_id


@pytest.fixture
async def own_server(db: Database, tmp_path: Path) -> AsyncIterator[Outbound]:
    """A deployment on a time-skipping server of its own. After this test the shared
    server sometimes stopped skipping time for the next test (a 1-day timer in history
    never fired). Most likely an activity task of the cancelled sends lingers on the test
    server (as one of a terminated workflow did), and an outstanding task stops time
    skipping; so this test runs apart."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=shutil.which("temporal-test-server")
        or str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
        yield Outbound(env.client, db.sessions, tmp_path / "outbox", database_url=db.url)
    finally:
        await env.shutdown()


async def test_a_revoked_grant_disables_the_mailbox_and_holds_its_sends_without_failing_them(
    own_server: Outbound, gmail: FakeGmail
) -> None:
    outbound = own_server
    use_gmail(outbound, gmail)
    campaign = seed(outbound.sessions, campaign_spec([FIRST_EMAIL]), {"A": people("a", 3)})
    connect_mailbox(outbound, gmail)
    gmail.revoke(EMAIL_SENDER)

    async with outbound.worker():
        handle = await outbound.launch(campaign)
        for _ in range(200):
            with outbound.sessions() as session:
                sender = session.scalars(select(Sender).where(Sender.address == EMAIL_SENDER)).one()
                statuses = set(session.scalars(select(StepExecution.status)))
            if sender.status == "disabled" and statuses == {"SCHEDULED"}:
                break
            await asyncio.sleep(0.1)
        assert sender.status == "disabled"
        assert "invalid_grant" in (sender.status_reason or "")
        assert statuses == {"SCHEDULED"}, "deferred to the mailbox's next day, not failed"
        assert gmail.sent(EMAIL_SENDER) == []
        await handle.signal(CANCEL, CancelSignal(reason="test over"))
        progress = await handle.result()
    assert progress.lifecycle.state is CampaignStatus.CANCELLED


async def test_sms_and_voicemail_go_through_twilio_with_status_callbacks_and_answering_machine_detection(
    outbound: Outbound, twilio: TwilioFake
) -> None:
    outbound.overrides |= {"twilio": twilio.settings(), "public_base_url": PUBLIC_URL}
    steps = [
        {"channel": "sms", "body": "Hi {{ first_name }}, quick question"},
        # No wait: this test is about the Twilio calls, not the calendar.
        {"channel": "voicemail", "say": "Hi {{ first_name }}, calling about {{ company }}"},
    ]
    campaign = seed(outbound.sessions, campaign_spec(steps), {"A": people("a", 2)})
    with unit_of_work(outbound.sessions) as session:
        for channel in ("sms", "voicemail"):
            add_sender(session, channel, PHONE_SENDER, "twilio", 1000, "UTC", datetime.now(UTC))

    async with outbound.worker():
        progress = await (await outbound.launch(campaign)).result()

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert len(twilio.messages) == 2
    assert len(twilio.calls) == 2
    for message in twilio.messages:
        assert message.param("From") == PHONE_SENDER
        assert (message.param("Body") or "").startswith("Hi ")
        assert message.param("StatusCallback") == f"{PUBLIC_URL}/twilio/status"
    with outbound.sessions() as session:
        rows = dict(session.execute(select(StepExecution.provider_message_id, StepExecution.id)).all())
    for call in twilio.calls:
        assert call.param("MachineDetection") == "DetectMessageEnd"
        assert call.param("Url") == f"{PUBLIC_URL}/twilio/voice/{rows[call.sid]}"
    assert {m.sid for m in twilio.messages} | {c.sid for c in twilio.calls} == set(rows)


async def test_the_mailbox_sync_stops_a_contact_who_replied_and_suppresses_a_hard_bounce(
    outbound: Outbound, gmail: FakeGmail
) -> None:
    use_gmail(outbound, gmail)
    campaign = seed(outbound.sessions, campaign_spec([FIRST_EMAIL, FOLLOW_UP]), {"A": people("a", 3)})
    connect_mailbox(outbound, gmail)
    replier, bounced = "a0@example.com", "a1@example.com"

    async with outbound.worker():
        handle = await outbound.launch(campaign)
        await wait_until(lambda: len(gmail.sent(EMAIL_SENDER)) == 3)
        first_email = {str(message.mail["To"]): message for message in gmail.sent(EMAIL_SENDER)}
        gmail.reply(EMAIL_SENDER, first_email[replier], sender=replier, text="Sounds good, call me Tuesday.")
        sync = await OutboundClient(outbound.client, outbound.prefix).start_mailbox_sync(
            mailbox_id(outbound), interval_seconds=3600
        )
        await wait_until(lambda: stopped_reason(outbound, replier) == "replied")

        gmail.deliver(EMAIL_SENDER, hard_bounce(first_email[bounced]))
        gmail.expire_history(EMAIL_SENDER)  # Gmail forgot the cursor: the next sync resyncs in full
        # Waiting for the campaign skips two days: the hourly syncs read Gmail's history
        # and see the bounce long before the follow-up is due.
        progress = await handle.result()
        # Ending the sync the way production does (a disabled mailbox stops it) rather than
        # terminating it: a terminated workflow's activity task can linger on the test
        # server and stop it from skipping time for later tests.
        with unit_of_work(outbound.sessions) as session:
            disable_sender(session, mailbox_id(outbound), "test over")
        stopped = await closed_result(outbound.client.get_workflow_handle(sync, result_type=SyncMailboxResult))

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert stopped.state is MailboxState.DISABLED
    assert stopped_reason(outbound, bounced) == "bounced"
    assert outbound.counts(campaign)[(2, "SENT")] == 1, "only the contact who neither replied nor bounced"
    with outbound.sessions() as session:
        assert session.scalar(select(Suppression.reason).where(Suppression.value == bounced)) is not None
        kinds = dict(session.execute(select(InboundMessage.from_address, InboundMessage.classification)).all())
    assert kinds[replier] == "reply"
    with outbound.sessions() as session:
        state = session.get(MailboxSync, mailbox_id(outbound))
        assert state is not None
        assert state.messages_seen == 2, "the reply (seen again by the full resync) is stored once"


def hard_bounce(original: object) -> bytes:
    """A Gmail mailer-daemon DSN (RFC 3464) for our message."""
    mail = original.mail  # type: ignore[attr-defined]
    recipient = str(mail["To"])
    return (
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
        f"To: {EMAIL_SENDER}\r\n"
        "Subject: Delivery Status Notification (Failure)\r\n"
        "Message-ID: <dsn-1@mx.google.com>\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message wasn't delivered to {recipient} because the address couldn't be found.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; googlemail.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach does not exist.\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {mail['Message-ID']}\r\nFrom: {EMAIL_SENDER}\r\nTo: {recipient}\r\n"
        "--b1--\r\n"
    ).encode()


def mailbox_id(outbound: Outbound) -> int:
    with outbound.sessions() as session:
        found = session.scalar(select(Sender.id).where(Sender.provider == "gmail"))
    assert found is not None
    return found


def stopped_reason(outbound: Outbound, email: str) -> str | None:
    with outbound.sessions() as session:
        return session.scalar(select(Contact.stopped_reason).where(Contact.email == email))


async def wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_gmails_daily_sending_limit_defers_the_mailboxs_sends_to_its_next_day(
    outbound: Outbound, gmail: FakeGmail, workflow_env: WorkflowEnvironment
) -> None:
    use_gmail(outbound, gmail)
    campaign = seed(outbound.sessions, campaign_spec([FIRST_EMAIL]), {"A": people("a", 2)})
    connect_mailbox(outbound, gmail)
    gmail.fail_next("send", SENDING_LIMIT)  # Gmail: "User-rate limit exceeded ... (Mail sending)"
    launched_on = await start_of_a_day(workflow_env)

    async with outbound.worker():
        progress = await (await outbound.launch(campaign)).result()

    assert progress.lifecycle.state is CampaignStatus.COMPLETED
    assert len(gmail.sent(EMAIL_SENDER)) == 2, "deferred, then sent once each: not failed, not retried in a storm"
    with outbound.sessions() as session:
        rows = session.execute(select(StepExecution.status, StepExecution.sent_at)).all()
    assert {status for status, _ in rows} == {"SENT"}
    assert any(sent_at.date() > launched_on for _, sent_at in rows), "the refused send went out the next day"
