"""Inbound ingestion on SQLite and PostgreSQL: what a reply, a bounce or an opt-out does to
the contact, in every campaign, in one transaction, once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import unit_of_work
from db.inbound import IngestResult, ingest_email
from db.models import Contact, Event, InboundMessage, Sender, Step, StepExecution, Suppression
from domain.contacts_csv import ContactRecord
from domain.inbound_classify import InboundKind, classify_email
from schemas.enums import ExecutionStatus
from tests.conftest import Database
from tests.support import EMAIL_SENDER, EMAIL_STEP, campaign_spec, seed

SAMPLES = Path(__file__).parent / "samples" / "inbound"
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
FOLLOW_UP = {**EMAIL_STEP, "wait": "2d"}
CONTACTS = (
    "jordan.lee@example.com",
    "nobody@example.org",
    "j.doe@example.net",
    "full.inbox@example.com",
    "gone.user@example.org",
    "alex.kim@example.org",
    "priya.patel@example.com",
)


@dataclass
class World:
    """Two two-step email campaigns with every contact in both: the first email of campaign
    A went out (a Message-ID and a Gmail thread each); everything else is still open."""

    db: Database
    mailbox_id: int
    contacts: dict[str, int]
    sent: dict[str, int]  # email -> campaign A's first execution

    def key(self, email: str) -> str:
        with self.db.sessions() as session:
            key = session.scalar(select(StepExecution.message_key).where(StepExecution.id == self.sent[email]))
        assert key is not None
        return key

    def thread(self, email: str) -> str:
        return f"thread-{self.sent[email]}"

    def ingest(self, raw: bytes, *, message_id: str, thread_id: str | None = None, threshold: int = 3) -> IngestResult:
        with unit_of_work(self.db.sessions) as session:
            return ingest_email(
                session,
                mailbox_sender_id=self.mailbox_id,
                provider_message_id=message_id,
                thread_id=thread_id,
                received_at=NOW - timedelta(minutes=1),
                raw=raw,
                now=NOW,
                soft_bounce_threshold=threshold,
            )

    def sample(self, name: str, *, answering: str | None = None) -> bytes:
        """A sample from tests/samples/inbound, pointed at the message we sent to `answering`."""
        raw = (SAMPLES / name).read_bytes()
        if answering is None:
            return raw
        for placeholder in (b"<outbound.7.42@", b"<outbound.7.43@", b"<outbound.7.46@", b"<outbound.7.47@"):
            raw = raw.replace(placeholder + b"outbound.example>", self.key(answering).encode())
        return raw

    def statuses(self, email: str) -> list[tuple[str, str | None]]:
        with self.db.sessions() as session:
            rows = session.execute(
                select(StepExecution.status, StepExecution.skip_reason)
                .where(StepExecution.contact_id == self.contacts[email])
                .order_by(StepExecution.id)
            )
            return [(status, reason) for status, reason in rows]

    def contact(self, email: str) -> Contact:
        with self.db.sessions() as session:
            return session.get_one(Contact, self.contacts[email])

    def suppressions(self) -> dict[str, str]:
        with self.db.sessions() as session:
            return {row.value: row.reason for row in session.scalars(select(Suppression))}

    def stored(self) -> list[InboundMessage]:
        with self.db.sessions() as session:
            return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


@pytest.fixture
def world(db: Database) -> World:
    records = {"A": [ContactRecord(line=i + 2, email=email) for i, email in enumerate(CONTACTS)]}
    first = seed(db.sessions, campaign_spec([EMAIL_STEP, FOLLOW_UP], name="Campaign A"), records)
    second = seed(db.sessions, campaign_spec([EMAIL_STEP, FOLLOW_UP], name="Campaign B"), records)
    sent: dict[str, int] = {}
    with unit_of_work(db.sessions) as session:
        mailbox_id = session.scalars(select(Sender.id).where(Sender.address == EMAIL_SENDER)).one()
        contacts = {email: id_ for email, id_ in session.execute(select(Contact.email, Contact.id)) if email}
        for campaign_id in (first, second):
            steps = session.scalars(select(Step).where(Step.campaign_id == campaign_id).order_by(Step.position))
            for step in steps:
                for email, contact_id in contacts.items():
                    execution = StepExecution(
                        campaign_id=campaign_id,
                        step_id=step.id,
                        contact_id=contact_id,
                        sender_id=mailbox_id,
                        status=ExecutionStatus.SCHEDULED.value,
                        scheduled_for=NOW + timedelta(days=step.position),
                    )
                    session.add(execution)
                    session.flush()
                    if campaign_id == first and step.position == 1:
                        execution.status = ExecutionStatus.SENT.value
                        execution.sent_at = NOW - timedelta(hours=2)
                        execution.message_key = f"<outbound.{campaign_id}.{execution.id}@outbound.example>"
                        execution.provider_message_id = f"gmail-{execution.id}"
                        execution.provider_thread_id = f"thread-{execution.id}"
                        sent[email] = execution.id
    return World(db, mailbox_id, {email: contacts[email] for email in CONTACTS}, sent)


def plain_mail(
    sender: str, body: str, *, in_reply_to: str | None = None, subject: str = "Re: hello", auto: bool = False
) -> bytes:
    """A written sample; `auto`: sent by an autoresponder (RFC 3834 `Auto-Submitted`)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = EMAIL_SENDER
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash((sender, body)))}@example.com>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    if auto:
        message["Auto-Submitted"] = "auto-replied"
    message.set_content(body)
    return bytes(message)


def events(world: World) -> list[str]:
    with world.db.sessions() as session:
        return list(session.scalars(select(Event.type).order_by(Event.id)))


OPEN = (ExecutionStatus.SCHEDULED.value, None)


def test_a_reply_stops_the_contact_in_every_campaign_at_once(world: World) -> None:
    raw = world.sample("human_reply_with_quote.eml", answering="jordan.lee@example.com")
    thread = world.thread("jordan.lee@example.com")

    result = world.ingest(raw, message_id="gmail-r1", thread_id=thread)

    jordan = world.contacts["jordan.lee@example.com"]
    assert result == IngestResult(True, InboundKind.REPLY, jordan, world.sent["jordan.lee@example.com"], True, None)
    replied = (ExecutionStatus.SKIPPED.value, "replied")
    assert world.statuses("jordan.lee@example.com") == [(ExecutionStatus.SENT.value, None), replied, replied, replied]
    assert world.contact("jordan.lee@example.com").stopped_reason == "replied"
    assert world.statuses("alex.kim@example.org")[1:] == [OPEN, OPEN, OPEN], "other contacts go on"
    (message,) = world.stored()
    assert (message.channel, message.classification, message.thread_id) == ("email", "reply", thread)
    assert (message.contact_id, message.execution_id) == (jordan, result.execution_id)
    assert message.sender_id == world.mailbox_id
    assert message.from_address == "jordan.lee@example.com"
    assert message.text_body is not None
    assert message.text_body.startswith("Hi Sam,")
    assert message.html_body is not None
    assert message.headers["Subject"] == "Re: Quick question about Acme"
    assert message.received_at == NOW - timedelta(minutes=1)
    assert world.suppressions() == {}, "a reply is not an opt-out"
    with world.db.sessions() as session:
        event = session.scalars(select(Event).where(Event.type == "contact.replied")).one()
        answered_campaign = session.get_one(StepExecution, result.execution_id).campaign_id
    assert event.data["message_id"] == result.execution_id, "the app hears which message was answered"
    assert (event.data["campaign_id"], event.data["source"]) == (answered_campaign, "gmail")
    assert event.data["contact"]["email"] == "jordan.lee@example.com"


def test_ingesting_the_same_message_twice_is_a_no_op(world: World) -> None:
    reply = world.sample("human_reply_with_quote.eml", answering="jordan.lee@example.com")
    bounce = world.sample("postfix_soft_bounce_4_2_2.eml", answering="full.inbox@example.com")

    first = [world.ingest(reply, message_id="gmail-r1"), world.ingest(bounce, message_id="gmail-b1")]
    again = [world.ingest(reply, message_id="gmail-r1"), world.ingest(bounce, message_id="gmail-b1")]

    assert [r.stored for r in first] == [True, True]
    assert [r.stored for r in again] == [False, False]
    assert [r.kind for r in again] == [InboundKind.REPLY, InboundKind.BOUNCE_SOFT], "answered from the stored row"
    assert [r.stopped for r in again] == [False, False]
    assert len(world.stored()) == 2
    assert world.contact("full.inbox@example.com").soft_bounces == 1, "the second sighting counted nothing"


def test_a_hard_bounce_suppresses_the_address_and_stops_the_contact(world: World) -> None:
    raw = world.sample("gmail_hard_bounce_5_1_1.eml", answering="nobody@example.org")

    result = world.ingest(raw, message_id="gmail-b1")

    assert result.kind is InboundKind.BOUNCE_HARD
    assert result.execution_id == world.sent["nobody@example.org"]
    assert result.suppressed == "nobody@example.org"
    assert world.suppressions() == {"nobody@example.org": "hard bounce 5.1.1"}
    assert world.contact("nobody@example.org").stopped_reason == "bounced"
    assert world.statuses("nobody@example.org")[1:] == [(ExecutionStatus.SKIPPED.value, "bounced")] * 3
    (message,) = world.stored()
    assert (message.classification, message.bounced_recipient) == ("bounce_hard", "nobody@example.org")
    assert message.headers["X-Outbound-Bounce-Status"] == "5.1.1"


def test_a_bounce_without_threading_headers_is_tied_to_our_message_by_the_returned_original(world: World) -> None:
    raw = world.sample("exchange_ndr_5_1_10.eml", answering="j.doe@example.net")

    result = world.ingest(raw, message_id="gmail-b2")

    assert (result.kind, result.execution_id) == (InboundKind.BOUNCE_HARD, world.sent["j.doe@example.net"])
    assert world.suppressions() == {"j.doe@example.net": "hard bounce 5.1.10"}


def test_a_bounce_of_a_message_we_cannot_find_still_reaches_the_contact_by_its_address(world: World) -> None:
    result = world.ingest(world.sample("yahoo_plain_text_bounce.eml"), message_id="gmail-b3")

    assert (result.kind, result.execution_id) == (InboundKind.BOUNCE_HARD, None)
    assert result.contact_id == world.contacts["gone.user@example.org"]
    assert world.contact("gone.user@example.org").stopped_reason == "bounced"


def test_soft_bounces_suppress_at_the_threshold_not_before(world: World) -> None:
    raw = world.sample("postfix_soft_bounce_4_2_2.eml", answering="full.inbox@example.com")

    results = [world.ingest(raw, message_id=f"gmail-soft-{n}", threshold=3) for n in (1, 2)]

    assert [r.stopped for r in results] == [False, False]
    assert world.contact("full.inbox@example.com").soft_bounces == 2
    assert world.contact("full.inbox@example.com").stopped_reason is None
    assert world.suppressions() == {}
    assert world.statuses("full.inbox@example.com")[1:] == [OPEN, OPEN, OPEN]

    third = world.ingest(raw, message_id="gmail-soft-3", threshold=3)

    assert (third.stopped, third.suppressed) == (True, "full.inbox@example.com")
    assert world.suppressions() == {"full.inbox@example.com": "3 soft bounces, last 4.2.2"}
    assert world.contact("full.inbox@example.com").stopped_reason == "bounced"
    assert world.statuses("full.inbox@example.com")[1:] == [(ExecutionStatus.SKIPPED.value, "bounced")] * 3


def test_an_opt_out_suppresses_the_address_and_stops_the_contact(world: World) -> None:
    raw = world.sample("unsubscribe_reply.eml", answering="alex.kim@example.org")

    result = world.ingest(raw, message_id="gmail-u1")

    assert (result.kind, result.stopped, result.suppressed) == (InboundKind.UNSUBSCRIBE, True, "alex.kim@example.org")
    assert world.suppressions() == {"alex.kim@example.org": "asked to be removed (email reply)"}
    assert world.contact("alex.kim@example.org").stopped_reason == "unsubscribed"
    assert world.statuses("alex.kim@example.org")[1:] == [(ExecutionStatus.SKIPPED.value, "unsubscribed")] * 3


def test_an_auto_reply_changes_nothing(world: World) -> None:
    before = world.statuses("priya.patel@example.com")
    raw = world.sample("outlook_automatic_reply.eml")  # answers <outbound.7.45@...>, found by sender

    result = world.ingest(raw, message_id="gmail-a1")

    assert (result.stored, result.kind, result.stopped) == (True, InboundKind.AUTO_REPLY, False)
    assert result.contact_id == world.contacts["priya.patel@example.com"]
    assert world.statuses("priya.patel@example.com") == before
    assert world.contact("priya.patel@example.com").stopped_reason is None
    assert world.suppressions() == {}
    assert [m.classification for m in world.stored()] == ["auto_reply"]
    (message,) = world.stored()
    assert message.intent == "out_of_office", "though the notice mentions unsubscribing"
    assert message.intent_details == {"return_date": "2026-11-30"}, "'until Monday, November 30', received in 2026"
    assert events(world) == [], "no contact.replied: an automatic reply is no answer"


def test_an_out_of_office_reply_is_stored_with_its_return_date_and_the_sequence_goes_on(world: World) -> None:
    before = world.statuses("jordan.lee@example.com")
    raw = plain_mail(
        "Jordan Lee <jordan.lee@example.com>",
        "Thanks for your note. I am away on parental leave and back on 14 January.\n\nJordan",
        in_reply_to=world.key("jordan.lee@example.com"),
        subject="Out of office: hello",
        auto=True,
    )

    result = world.ingest(raw, message_id="gmail-o1")

    assert (result.kind, result.stopped) == (InboundKind.AUTO_REPLY, False)
    (message,) = world.stored()
    assert (message.intent, message.intent_source) == ("out_of_office", "rules")
    assert message.intent_details == {"return_date": "2027-01-14"}, "received in November 2026: next January"
    assert world.statuses("jordan.lee@example.com") == before
    assert world.contact("jordan.lee@example.com").stopped_reason is None
    assert events(world) == []


def test_an_opt_out_is_stored_as_an_unsubscribe_request(world: World) -> None:
    raw = plain_mail(
        "Alex Kim <alex.kim@example.org>",
        "Please take me off your list.\n\nAlex",
        in_reply_to=world.key("alex.kim@example.org"),
    )

    result = world.ingest(raw, message_id="gmail-u2")

    assert (result.kind, result.stopped) == (InboundKind.UNSUBSCRIBE, True)
    (message,) = world.stored()
    assert (message.intent, message.intent_details, message.intent_source) == ("unsubscribe_request", None, "rules")
    assert world.contact("alex.kim@example.org").stopped_reason == "unsubscribed"
    assert events(world) == ["contact.unsubscribed"], "an opt-out, not a reply"


def test_mail_from_the_mailbox_itself_is_ignored(world: World) -> None:
    key = world.key("jordan.lee@example.com")
    raw = plain_mail(f"Sam Seller <{EMAIL_SENDER.upper()}>", "Following up", in_reply_to=key)

    result = world.ingest(raw, message_id="gmail-own", thread_id=world.thread("jordan.lee@example.com"))

    assert result.stored is False
    assert world.stored() == []
    assert world.contact("jordan.lee@example.com").stopped_reason is None


def test_a_colleague_answering_in_the_gmail_thread_stops_the_contact_of_that_thread(world: World) -> None:
    raw = plain_mail("Robin Ops <robin.ops@example.com>", "Jordan asked me to set up a call.")

    result = world.ingest(raw, message_id="gmail-r2", thread_id=world.thread("jordan.lee@example.com"))

    assert (result.contact_id, result.execution_id) == (
        world.contacts["jordan.lee@example.com"],
        world.sent["jordan.lee@example.com"],
    )
    assert world.contact("jordan.lee@example.com").stopped_reason == "replied"


def test_a_contact_writing_a_new_email_counts_as_a_reply(world: World) -> None:
    result = world.ingest(plain_mail("jordan.lee@example.com", "Can we talk?", subject="Acme"), message_id="gmail-n1")

    assert (result.kind, result.execution_id) == (InboundKind.REPLY, None)
    assert world.contact("jordan.lee@example.com").stopped_reason == "replied"


def test_mail_from_a_stranger_is_stored_without_any_effect(world: World) -> None:
    result = world.ingest(plain_mail("stranger@example.net", "Please remove me."), message_id="gmail-s1")

    assert (result.stored, result.kind) == (True, InboundKind.UNSUBSCRIBE)
    assert (result.contact_id, result.stopped, result.suppressed) == (None, False, None)
    assert world.suppressions() == {}
    assert [m.contact_id for m in world.stored()] == [None]


def test_malformed_mail_is_stored_as_other(world: World) -> None:
    result = world.ingest(b"\x00\xff garbage without headers \x00", message_id="gmail-x1")

    assert (result.stored, result.kind) == (True, InboundKind.OTHER)
    assert [m.classification for m in world.stored()] == ["other"]


def test_two_syncs_racing_on_one_message_act_once(world: World) -> None:
    """The second transaction starts before the first commits: on PostgreSQL its insert
    waits on the first one's key and then does nothing; SQLite serialises the writers."""
    raw = world.sample("postfix_soft_bounce_4_2_2.eml", answering="full.inbox@example.com")
    results: list[IngestResult] = []
    with unit_of_work(world.db.sessions) as session:
        first = ingest_email(
            session,
            mailbox_sender_id=world.mailbox_id,
            provider_message_id="gmail-race",
            thread_id=None,
            received_at=NOW,
            raw=raw,
            now=NOW,
            soft_bounce_threshold=3,
        )
        racer = threading.Thread(target=lambda: results.append(world.ingest(raw, message_id="gmail-race")))
        racer.start()
        time.sleep(0.5)
    racer.join(timeout=60)

    assert first.stored is True
    assert [r.stored for r in results] == [False]
    assert world.contact("full.inbox@example.com").soft_bounces == 1
    assert len(world.stored()) == 1


def test_a_replys_intent_is_stored_with_the_message_and_told_to_the_app(world: World) -> None:
    from domain.reply_intent import IntentVerdict, ReplyIntent

    raw = world.sample("human_reply_with_quote.eml", answering="jordan.lee@example.com")
    verdict = IntentVerdict.model_validate(
        {"intent": "referral", "referral": {"name": "Maria Lopez", "email": "maria@example.com"}, "source": "m-1"}
    )
    with unit_of_work(world.db.sessions) as session:
        ingest_email(
            session, mailbox_sender_id=world.mailbox_id, provider_message_id="gmail-i1",
            thread_id=world.thread("jordan.lee@example.com"), received_at=NOW, raw=raw, now=NOW,
            soft_bounce_threshold=3, intent=verdict,
        )  # fmt: skip
    (message,) = world.stored()
    assert (message.intent, message.intent_source) == (ReplyIntent.REFERRAL.value, "m-1")
    assert message.intent_details == {"referral": {"name": "Maria Lopez", "email": "maria@example.com"}}
    with world.db.sessions() as session:
        event = session.scalars(select(Event).where(Event.type == "contact.replied")).one()
    assert event.data["intent"] == "referral"
    assert event.data["referral"] == {"name": "Maria Lopez", "email": "maria@example.com"}


def test_the_sync_judges_a_new_reply_with_the_model_and_nothing_else(world: World) -> None:
    from pydantic import SecretStr

    from activities.inbound import InboundActivities
    from runtime.ai import ReplyClassifier
    from runtime.settings import AiSettings
    from tests.openai_fake import KEY, MODEL, fake_model

    reply = world.sample("human_reply_with_quote.eml", answering="jordan.lee@example.com")
    bounce = (SAMPLES / "gmail_hard_bounce_5_1_1.eml").read_bytes()
    with fake_model() as model:
        model.script[""] = {"intent": "meeting_request"}
        settings = AiSettings(base_url=model.base_url, model=MODEL, api_key=SecretStr(KEY), retries=0)
        sync = InboundActivities(world.db.sessions, None, 3, ReplyClassifier(settings))  # type: ignore[arg-type]
        verdict = sync._intent("gmail-new", classify_email(reply))
        assert verdict is not None
        assert (verdict.intent.value, verdict.source) == ("meeting_request", MODEL)
        assert sync._intent("gmail-bounce", classify_email(bounce)) is None, "only replies are judged"
        world.ingest(reply, message_id="gmail-new", thread_id=world.thread("jordan.lee@example.com"))
        assert sync._intent("gmail-new", classify_email(reply)) is None, "a message already stored is not judged again"
    assert len(model.requests) == 1


def test_the_sync_asks_the_model_for_an_automatic_replys_return_date_but_not_about_an_opt_out(world: World) -> None:
    from datetime import date

    from pydantic import SecretStr

    from activities.inbound import InboundActivities
    from runtime.ai import ReplyClassifier
    from runtime.settings import AiSettings
    from tests.openai_fake import KEY, MODEL, fake_model

    notice = world.sample("german_abwesenheitsnotiz.eml")  # "bis einschließlich 4. Dezember": no rule reads it
    opt_out = world.sample("unsubscribe_reply.eml", answering="alex.kim@example.org")
    with fake_model() as model:
        model.script["Dezember"] = {"intent": "out_of_office", "return_date": "2026-12-04"}
        settings = AiSettings(base_url=model.base_url, model=MODEL, api_key=SecretStr(KEY), retries=0)
        sync = InboundActivities(world.db.sessions, None, 3, ReplyClassifier(settings))  # type: ignore[arg-type]
        verdict = sync._intent("gmail-ooo", classify_email(notice), date(2026, 11, 23))
        assert sync._intent("gmail-optout", classify_email(opt_out), date(2026, 11, 23)) is None, "its kind says it"
    assert verdict is not None
    assert "arrived on 2026-11-23" in model.requests[0]["messages"][0]["content"], "a yearless date can be completed"
    assert len(model.requests) == 1
    with unit_of_work(world.db.sessions) as session:
        ingest_email(
            session, mailbox_sender_id=world.mailbox_id, provider_message_id="gmail-ooo", thread_id=None,
            received_at=NOW, raw=notice, now=NOW, soft_bounce_threshold=3, intent=verdict,
        )  # fmt: skip
    (message,) = world.stored()
    assert (message.classification, message.intent, message.intent_source) == ("auto_reply", "out_of_office", MODEL)
    assert message.intent_details == {"return_date": "2026-12-04"}
