"""Twilio SMS and voicemail: the real SDK client against a local fake of Twilio's REST API."""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

from domain.voicemail_twiml import voicemail_twiml
from providers.base import DeliveryUnknown, FailureKind, OutgoingMessage, ProviderError
from providers.twilio_provider import (
    CLOCK_SKEW_MARGIN,
    MAX_SEARCHED_RECORDS,
    TwilioSmsProvider,
    TwilioVoicemailProvider,
    classify_twilio_error,
    make_twilio_client,
)
from runtime.settings import TwilioSettings
from schemas.enums import Channel
from tests.fakes.twilio_fake import Collection, TwilioFake

CONTACT = "+15558675309"
SENDER = "+15005550006"
BODY = "Hi Jenny, quick question about your Q3 hiring plans?"
CALLBACK = "https://outbound.example.com/webhooks/twilio/status?execution=41"
VOICE_URL = "https://outbound.example.com/webhooks/twilio/voicemail/42"


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake() as twilio:
        yield twilio
        assert twilio.errors == [], "the fake saw requests Twilio would reject"


def sms(**changes: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "execution_id": 41,
        "key": "<41.outbound@example.com>",
        "channel": Channel.SMS,
        "sender_address": SENDER,
        "to": CONTACT,
        "body": BODY,
        "status_callback": CALLBACK,
    }
    return OutgoingMessage(**(fields | changes))  # type: ignore[arg-type]


def voicemail(**changes: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "execution_id": 42,
        "key": "<42.outbound@example.com>",
        "channel": Channel.VOICEMAIL,
        "sender_address": SENDER,
        "to": CONTACT,
        "say": "Hi Jenny, this is Sam from Acme.",
        "status_callback": CALLBACK,
        "voice_url": VOICE_URL,
    }
    return OutgoingMessage(**(fields | changes))  # type: ignore[arg-type]


def assert_no_pii(error: BaseException) -> None:
    text = " ".join([str(error), repr(error), *map(str, error.args)])
    for secret in (CONTACT, CONTACT.removeprefix("+"), "8675309", BODY, "Jenny"):
        assert secret not in text
    # Temporal serializes the cause, or the context unless suppressed, into workflow history.
    assert error.__cause__ is None, "the SDK's exception (with Twilio's text) must not travel as the cause"
    assert error.__context__ is None or error.__suppress_context__


# -- sending -------------------------------------------------------------------------------


def test_sms_send_returns_the_sid_and_twilio_got_every_field(fake: TwilioFake) -> None:
    receipt = TwilioSmsProvider(fake.settings()).send(sms())

    [created] = fake.messages
    assert receipt.provider_message_id == created.sid
    assert created.sid.startswith("SM")
    assert created.param("To") == CONTACT
    assert created.param("From") == SENDER
    assert created.param("Body") == BODY
    assert created.param("StatusCallback") == CALLBACK


def test_voicemail_send_creates_a_call_that_waits_for_the_end_of_the_greeting(fake: TwilioFake) -> None:
    receipt = TwilioVoicemailProvider(fake.settings()).send(voicemail())

    [call] = fake.calls
    assert receipt.provider_message_id == call.sid
    assert call.sid.startswith("CA")
    assert (call.param("To"), call.param("From")) == (CONTACT, SENDER)
    assert call.param("Url") == VOICE_URL
    assert call.param("MachineDetection") == "DetectMessageEnd"
    assert call.param("AsyncAmd") == "false"
    assert call.param("StatusCallback") == CALLBACK
    assert call.params["StatusCallbackEvent"] == ["completed"]
    assert fake.messages == []


def test_voicemail_without_a_public_voice_url_is_permanent_and_calls_nobody(fake: TwilioFake) -> None:
    with pytest.raises(ProviderError) as raised:
        TwilioVoicemailProvider(fake.settings()).send(voicemail(voice_url=None))

    assert raised.value.kind is FailureKind.PERMANENT
    assert "public" in str(raised.value).lower()
    assert fake.calls == []


def test_empty_sms_and_empty_voicemail_are_permanent_without_a_request(fake: TwilioFake) -> None:
    with pytest.raises(ProviderError) as empty_sms:
        TwilioSmsProvider(fake.settings()).send(sms(body=""))
    with pytest.raises(ProviderError) as empty_call:
        TwilioVoicemailProvider(fake.settings()).send(voicemail(say=None, audio_url=None))

    assert empty_sms.value.kind is empty_call.value.kind is FailureKind.PERMANENT
    assert fake.requests == []


def test_missing_credentials_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="ACCOUNT_SID"):
        TwilioSmsProvider(TwilioSettings())


def test_the_fake_refuses_what_twilio_would_refuse(fake: TwilioFake) -> None:
    client = make_twilio_client(fake.settings())

    with pytest.raises(TwilioRestException) as raised:
        client.calls.create(to=CONTACT, from_=SENDER, url="not a url")

    assert raised.value.status == 400
    assert any("DetectMessageEnd" in error for error in fake.errors)
    assert any("Url is not an absolute URL" in error for error in fake.errors)
    fake.errors.clear()


# -- lost responses and the look-up (R3) -------------------------------------------------------


@pytest.mark.parametrize("how", ["500", "drop"])
def test_a_lost_sms_response_is_found_instead_of_sent_again(fake: TwilioFake, how: str) -> None:
    provider = TwilioSmsProvider(fake.settings())
    fake.lose_next_create_response(how)  # type: ignore[arg-type]

    with pytest.raises(ProviderError) as raised:
        provider.send(sms())
    found = provider.find_sent(sms())

    assert raised.value.kind in (FailureKind.RETRYABLE, FailureKind.THROTTLED)  # retried either way
    [created] = fake.messages
    assert created.resource["status"] == "queued"
    assert created.resource["date_sent"] is None
    assert found is not None
    assert found.provider_message_id == created.sid


@pytest.mark.parametrize("how", ["500", "drop"])
def test_a_lost_call_response_is_found_instead_of_calling_again(fake: TwilioFake, how: str) -> None:
    provider = TwilioVoicemailProvider(fake.settings())
    fake.lose_next_create_response(how)  # type: ignore[arg-type]

    with pytest.raises(ProviderError):
        provider.send(voicemail())
    found = provider.find_sent(voicemail())

    [call] = fake.calls
    assert call.resource["start_time"] is None
    assert found is not None
    assert found.provider_message_id == call.sid


def test_a_timed_out_send_is_retryable_and_then_found(fake: TwilioFake) -> None:
    settings = fake.settings()
    provider = TwilioSmsProvider(settings, make_twilio_client(settings, timeout_seconds=0.2))
    fake.delay_next_create(0.8)

    with pytest.raises(ProviderError) as raised:
        provider.send(sms())
    deadline = time.monotonic() + 5
    while not fake.messages and time.monotonic() < deadline:
        time.sleep(0.05)

    assert raised.value.kind is FailureKind.RETRYABLE
    found = provider.find_sent(sms())
    assert found is not None
    assert found.provider_message_id == fake.messages[0].sid


def test_a_connection_broken_before_twilio_acted_proves_nothing_was_sent(fake: TwilioFake) -> None:
    provider = TwilioSmsProvider(fake.settings())
    fake.drop_next_create()

    with pytest.raises(ProviderError) as raised:
        provider.send(sms())

    assert raised.value.kind is FailureKind.RETRYABLE
    assert provider.find_sent(sms()) is None
    assert provider.send(sms()).provider_message_id == fake.messages[0].sid


def test_look_up_ignores_other_bodies_other_pairs_and_old_messages(fake: TwilioFake) -> None:
    now = datetime.now(UTC)
    fake.seed("Messages", to=CONTACT, from_=SENDER, body="step 1: a different text", created=now)
    fake.seed("Messages", to="+15550000001", from_=SENDER, body=BODY, created=now)
    fake.seed("Messages", to=CONTACT, from_="+15550000002", body=BODY, created=now)
    fake.seed("Messages", to=CONTACT, from_=SENDER, body=BODY, created=now - timedelta(days=30))

    assert TwilioSmsProvider(fake.settings()).find_sent(sms()) is None


def test_look_up_accepts_opt_out_language_twilio_appended(fake: TwilioFake) -> None:
    seeded = fake.seed(
        "Messages", to=CONTACT, from_=SENDER, body=BODY + "\nReply STOP to unsubscribe", created=datetime.now(UTC)
    )

    found = TwilioSmsProvider(fake.settings()).find_sent(sms())

    assert found is not None
    assert found.provider_message_id == seeded.sid


def test_look_up_reads_past_the_first_page(fake: TwilioFake) -> None:
    start = datetime.now(UTC) - timedelta(hours=3)
    ours = fake.seed("Messages", to=CONTACT, from_=SENDER, body=BODY, created=start)
    for minute in range(1, 75):
        fake.seed(
            "Messages", to=CONTACT, from_=SENDER, body=f"other {minute}", created=start + timedelta(minutes=minute)
        )

    found = TwilioSmsProvider(fake.settings()).find_sent(sms())

    assert found is not None
    assert found.provider_message_id == ours.sid
    assert sum(1 for method, _ in fake.requests if method == "GET") >= 2


def test_too_many_records_for_one_pair_is_unknown_not_absent(fake: TwilioFake) -> None:
    now = datetime.now(UTC)
    for index in range(MAX_SEARCHED_RECORDS + 1):
        fake.seed("Messages", to=CONTACT, from_=SENDER, body=f"other {index}", created=now)

    with pytest.raises(DeliveryUnknown) as raised:
        TwilioSmsProvider(fake.settings()).find_sent(sms())
    assert_no_pii(raised.value)


def test_call_look_up_takes_the_newest_call_in_the_window(fake: TwilioFake) -> None:
    now = datetime.now(UTC)
    fake.seed("Calls", to=CONTACT, from_=SENDER, created=now - timedelta(days=5))
    assert TwilioVoicemailProvider(fake.settings()).find_sent(voicemail()) is None

    earlier = fake.seed("Calls", to=CONTACT, from_=SENDER, created=now - timedelta(hours=2))
    newest = fake.seed("Calls", to=CONTACT, from_=SENDER, created=now - timedelta(minutes=1))
    found = TwilioVoicemailProvider(fake.settings()).find_sent(voicemail())

    assert found is not None
    assert found.provider_message_id == newest.sid != earlier.sid


# -- a retry's look-up starts when its row entered SENDING (R3) --------------------------------
#
# Step 1 reached the contact yesterday; step 2, to the same number from the same sender, entered
# SENDING now and its first attempt lost the response. The retry asks Twilio whether step 2 went
# out: step 1's record must never answer for it.


def step_two_sms(sending_since: datetime | None) -> OutgoingMessage:
    return sms(execution_id=51, key="<51.outbound@example.com>", sending_since=sending_since)


def step_two_voicemail(sending_since: datetime | None) -> OutgoingMessage:
    return voicemail(execution_id=52, key="<52.outbound@example.com>", sending_since=sending_since)


@pytest.mark.parametrize("how", ["500", "drop"])
def test_a_voicemail_retry_finds_its_own_call_not_the_previous_steps(fake: TwilioFake, how: str) -> None:
    step_one = fake.seed("Calls", to=CONTACT, from_=SENDER, created=datetime.now(UTC) - timedelta(days=1))
    provider = TwilioVoicemailProvider(fake.settings())
    message = step_two_voicemail(sending_since=datetime.now(UTC))
    fake.lose_next_create_response(how)  # type: ignore[arg-type]

    with pytest.raises(ProviderError):
        provider.send(message)
    found = provider.find_sent(message)

    [_, step_two] = fake.calls
    assert step_two.resource["start_time"] is None  # still queued: no StartTime> filter would find it
    assert found is not None
    assert found.provider_message_id == step_two.sid != step_one.sid


def test_a_voicemail_retry_whose_call_never_happened_is_not_answered_by_the_previous_steps_call(
    fake: TwilioFake,
) -> None:
    fake.seed("Calls", to=CONTACT, from_=SENDER, created=datetime.now(UTC) - timedelta(days=1))
    provider = TwilioVoicemailProvider(fake.settings())
    message = step_two_voicemail(sending_since=datetime.now(UTC))
    fake.drop_next_create()  # the connection broke before Twilio acted

    with pytest.raises(ProviderError):
        provider.send(message)

    assert provider.find_sent(message) is None  # so the retry calls, once
    assert len(fake.calls) == 1


@pytest.mark.parametrize("how", ["500", "drop"])
def test_an_sms_retry_finds_its_own_message_not_an_earlier_step_with_the_same_text(fake: TwilioFake, how: str) -> None:
    step_one = fake.seed("Messages", to=CONTACT, from_=SENDER, body=BODY, created=datetime.now(UTC) - timedelta(days=1))
    provider = TwilioSmsProvider(fake.settings())
    message = step_two_sms(sending_since=datetime.now(UTC))
    fake.lose_next_create_response(how)  # type: ignore[arg-type]

    with pytest.raises(ProviderError):
        provider.send(message)
    found = provider.find_sent(message)

    [_, step_two] = fake.messages
    assert step_two.resource["date_sent"] is None  # still queued: no DateSent> filter would find it
    assert found is not None
    assert found.provider_message_id == step_two.sid != step_one.sid


def test_an_sms_retry_whose_message_never_went_out_is_not_answered_by_an_earlier_step_with_the_same_text(
    fake: TwilioFake,
) -> None:
    fake.seed("Messages", to=CONTACT, from_=SENDER, body=BODY, created=datetime.now(UTC) - timedelta(days=1))
    provider = TwilioSmsProvider(fake.settings())
    message = step_two_sms(sending_since=datetime.now(UTC))
    fake.drop_next_create()

    with pytest.raises(ProviderError):
        provider.send(message)

    assert provider.find_sent(message) is None
    assert len(fake.messages) == 1


@pytest.mark.parametrize("provider_class", [TwilioSmsProvider, TwilioVoicemailProvider])
def test_a_record_twilio_stamped_a_little_before_sending_since_is_still_this_sends(
    fake: TwilioFake, provider_class: type[TwilioSmsProvider | TwilioVoicemailProvider]
) -> None:
    """Twilio stamps whole seconds by its own clock, which may run a little behind ours."""
    entered = datetime.now(UTC).replace(microsecond=900_000)
    fake.clock = lambda: entered - timedelta(seconds=2)
    message = step_two_sms(entered) if provider_class is TwilioSmsProvider else step_two_voicemail(entered)
    provider = provider_class(fake.settings())
    fake.lose_next_create_response()

    with pytest.raises(ProviderError):
        provider.send(message)
    found = provider.find_sent(message)

    [created] = fake.records
    assert found is not None
    assert found.provider_message_id == created.sid


@pytest.mark.parametrize("provider_class", [TwilioSmsProvider, TwilioVoicemailProvider])
def test_nothing_created_before_sending_since_less_the_clock_margin_ever_matches(
    fake: TwilioFake, provider_class: type[TwilioSmsProvider | TwilioVoicemailProvider]
) -> None:
    entered = datetime.now(UTC).replace(microsecond=0)
    collection: Collection = "Messages" if provider_class is TwilioSmsProvider else "Calls"
    just_before = entered - CLOCK_SKEW_MARGIN - timedelta(seconds=1)
    fake.seed(collection, to=CONTACT, from_=SENDER, body=BODY, created=just_before)
    message = step_two_sms(entered) if provider_class is TwilioSmsProvider else step_two_voicemail(entered)

    assert provider_class(fake.settings()).find_sent(message) is None


def test_a_look_up_without_sending_since_keeps_the_look_back_window(fake: TwilioFake) -> None:
    """Rows that entered SENDING before `sending_since` was recorded have only the window."""
    now = datetime.now(UTC)
    call = fake.seed("Calls", to=CONTACT, from_=SENDER, created=now - timedelta(days=1))
    text = fake.seed("Messages", to=CONTACT, from_=SENDER, body=BODY, created=now - timedelta(days=3))

    found_call = TwilioVoicemailProvider(fake.settings()).find_sent(step_two_voicemail(sending_since=None))
    found_text = TwilioSmsProvider(fake.settings()).find_sent(step_two_sms(sending_since=None))

    assert found_call is not None
    assert found_call.provider_message_id == call.sid
    assert found_text is not None
    assert found_text.provider_message_id == text.sid


@pytest.mark.parametrize("provider_class", [TwilioSmsProvider, TwilioVoicemailProvider])
def test_the_look_back_window_still_bounds_a_row_long_in_sending(
    fake: TwilioFake, provider_class: type[TwilioSmsProvider | TwilioVoicemailProvider]
) -> None:
    now = datetime.now(UTC)
    collection: Collection = "Messages" if provider_class is TwilioSmsProvider else "Calls"
    fake.seed(collection, to=CONTACT, from_=SENDER, body=BODY, created=now - timedelta(days=8))
    since = now - timedelta(days=10)
    message = step_two_sms(since) if provider_class is TwilioSmsProvider else step_two_voicemail(since)

    assert provider_class(fake.settings()).find_sent(message) is None


@pytest.mark.parametrize(("status", "drop"), [(500, False), (503, False), (401, False), (0, True)])
@pytest.mark.parametrize("provider_class", [TwilioSmsProvider, TwilioVoicemailProvider])
def test_a_failed_search_is_delivery_unknown(
    fake: TwilioFake, provider_class: type[TwilioSmsProvider | TwilioVoicemailProvider], status: int, drop: bool
) -> None:
    fake.fail_next_search(status, drop=drop)
    message = sms() if provider_class is TwilioSmsProvider else voicemail()

    with pytest.raises(DeliveryUnknown) as raised:
        provider_class(fake.settings()).find_sent(message)
    assert_no_pii(raised.value)


def test_a_failed_second_page_is_delivery_unknown(fake: TwilioFake) -> None:
    now = datetime.now(UTC)
    for index in range(60):
        fake.seed("Messages", to=CONTACT, from_=SENDER, body=f"other {index}", created=now)
    fake.fail_next_search(500, page=1)

    with pytest.raises(DeliveryUnknown):
        TwilioSmsProvider(fake.settings()).find_sent(sms())
    assert [method for method, _ in fake.requests] == ["GET", "GET"]


# -- error classification --------------------------------------------------------------------


TWILIO_TEXT = f"The 'To' number {CONTACT} is not valid. Body: {BODY}"


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, 21211, FailureKind.PERMANENT),  # invalid To
        (400, 21214, FailureKind.PERMANENT),  # To cannot be reached
        (400, 21217, FailureKind.PERMANENT),  # not a valid phone number
        (400, 21401, FailureKind.PERMANENT),
        (400, 21408, FailureKind.PERMANENT),  # no permission for the region
        (400, 21610, FailureKind.PERMANENT),  # unsubscribed recipient
        (400, 21612, FailureKind.PERMANENT),
        (400, 21614, FailureKind.PERMANENT),  # landline
        (400, 21606, FailureKind.PERMANENT),  # From cannot send SMS
        (400, 21659, FailureKind.PERMANENT),
        (400, 21215, FailureKind.PERMANENT),  # geo permissions
        (401, 20003, FailureKind.AUTH_REVOKED),
        (429, 20429, FailureKind.THROTTLED),
        (429, None, FailureKind.THROTTLED),
        (400, 30001, FailureKind.THROTTLED),  # queue overflow
        (500, 20500, FailureKind.THROTTLED),
        (503, None, FailureKind.THROTTLED),
        (408, None, FailureKind.RETRYABLE),  # a timeout says nothing about the sender
        (400, 29999, FailureKind.PERMANENT),  # unknown 4xx
    ],
)
def test_twilio_errors_map_to_failure_kinds_through_the_sdk(
    fake: TwilioFake, status: int, code: int | None, kind: FailureKind
) -> None:
    fake.fail_next_create(status, code, TWILIO_TEXT)

    with pytest.raises(ProviderError) as raised:
        TwilioSmsProvider(fake.settings()).send(sms())

    assert raised.value.kind is kind
    assert raised.value.code == (str(code) if code else f"http_{status}")
    assert_no_pii(raised.value)
    assert fake.messages == []


def test_a_wrong_auth_token_means_the_account_can_no_longer_send(fake: TwilioFake) -> None:
    with pytest.raises(ProviderError) as raised:
        TwilioVoicemailProvider(fake.settings(auth_token="revoked")).send(voicemail())

    assert raised.value.kind is FailureKind.AUTH_REVOKED
    assert raised.value.code == "20003"
    assert fake.calls == []


def test_voicemail_errors_use_the_same_classification(fake: TwilioFake) -> None:
    fake.fail_next_create(400, 21215, TWILIO_TEXT)

    with pytest.raises(ProviderError) as raised:
        TwilioVoicemailProvider(fake.settings()).send(voicemail())

    assert (raised.value.kind, raised.value.code) == (FailureKind.PERMANENT, "21215")
    assert_no_pii(raised.value)


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (TwilioRestException(400, f"/Messages.json?To={CONTACT}", TWILIO_TEXT, 21211), FailureKind.PERMANENT, "21211"),
        (TwilioRestException(400, "/x", TWILIO_TEXT, 21610), FailureKind.PERMANENT, "21610"),
        (TwilioRestException(502, "/x", TWILIO_TEXT, 502), FailureKind.THROTTLED, "http_502"),  # code echoes status
        (TwilioRestException(401, "/x", TWILIO_TEXT, 401), FailureKind.AUTH_REVOKED, "http_401"),
        (TwilioRestException(403, "/x", TWILIO_TEXT, 20008), FailureKind.PERMANENT, "20008"),
        (TwilioRestException(400, "/x", TWILIO_TEXT, 63038), FailureKind.QUOTA_EXHAUSTED, "63038"),
        (TwilioServiceException("about:blank", TWILIO_TEXT, 429, 20429, TWILIO_TEXT), FailureKind.THROTTLED, "20429"),
        (requests.ConnectionError(TWILIO_TEXT), FailureKind.RETRYABLE, "network"),
        (requests.ReadTimeout(TWILIO_TEXT), FailureKind.RETRYABLE, "network"),
        (TwilioException("Unable to fetch page", TWILIO_TEXT), FailureKind.RETRYABLE, "network"),
    ],
)
def test_classify_twilio_error(error: BaseException, kind: FailureKind, code: str) -> None:
    classified = classify_twilio_error(error)

    assert (classified.kind, classified.code) == (kind, code)
    assert_no_pii(classified)


def test_the_sdk_does_not_log_phone_numbers(fake: TwilioFake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider = TwilioSmsProvider(fake.settings())

    provider.send(sms())
    provider.find_sent(sms())

    assert all(CONTACT not in record.getMessage() and BODY not in record.getMessage() for record in caplog.records)


# -- TwiML for the voicemail webhook ------------------------------------------------------------


def verbs(twiml: str) -> list[tuple[str, str | None, dict[str, str]]]:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return [(child.tag, child.text, dict(child.attrib)) for child in root]


@pytest.mark.parametrize(
    "answered_by", ["machine_end_beep", "machine_end_silence", "machine_end_other", "unknown", None]
)
def test_a_machine_hears_the_text_then_the_call_ends(answered_by: str | None) -> None:
    twiml = voicemail_twiml(answered_by=answered_by, say="Hi from Acme.", audio_url=None)

    assert verbs(twiml) == [("Say", "Hi from Acme.", {"voice": "Polly.Joanna"}), ("Hangup", None, {})]


def test_a_recording_wins_over_the_text() -> None:
    twiml = voicemail_twiml(answered_by="machine_end_beep", say="Hi", audio_url="https://cdn.example.com/vm.mp3")

    assert verbs(twiml) == [("Play", "https://cdn.example.com/vm.mp3", {}), ("Hangup", None, {})]


def test_a_person_who_answers_is_hung_up_on() -> None:
    assert verbs(voicemail_twiml(answered_by="human", say="Hi", audio_url=None)) == [("Hangup", None, {})]


def test_a_step_may_allow_speaking_to_a_person() -> None:
    twiml = voicemail_twiml(answered_by="human", say="Hi", audio_url=None, speak_to_humans=True, voice="alice")

    assert verbs(twiml) == [("Say", "Hi", {"voice": "alice"}), ("Hangup", None, {})]


def test_a_fax_never_gets_the_message() -> None:
    twiml = voicemail_twiml(answered_by="fax", say="Hi", audio_url=None, speak_to_humans=True)

    assert verbs(twiml) == [("Hangup", None, {})]


def test_text_is_escaped_in_twiml() -> None:
    twiml = voicemail_twiml(answered_by="machine_end_beep", say="Q&A <today>", audio_url=None)

    assert verbs(twiml)[0][1] == "Q&A <today>"
