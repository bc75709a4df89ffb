"""Gmail send and read side, through the real google-api-python-client and google-auth,
against an HTTP-level fake of the Gmail API that checks every request it receives."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httplib2
import pytest
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.errors import HttpError

from providers.base import DeliveryUnknown, FailureKind, OutgoingMessage, ProviderError, SentReceipt
from providers.gmail import GmailProvider, classify_gmail_error
from providers.gmail_auth import GmailServices
from providers.gmail_mailbox import GmailMailbox, HistoryExpired, MessageGone
from schemas.enums import Channel
from tests.fakes.gmail_fake import (
    BACKEND_ERROR,
    DAILY_LIMIT,
    INSUFFICIENT_PERMISSIONS,
    INVALID_TO,
    RATE_LIMITED,
    SENDING_LIMIT,
    UNAVAILABLE,
    USER_RATE_LIMITED,
    FakeGmail,
    HttpFault,
    LostResponse,
    StoredMessage,
    parse_mail,
)

SENDER = "rep@sales.example"
RECIPIENT = "jane@acme.test"
GRACE = 0.05
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://outbound.example/u/s1gn3d.t0ken>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def gmail() -> Iterator[FakeGmail]:
    with FakeGmail() as fake:
        fake.add_account(SENDER)
        yield fake
        fake.assert_clean()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def provider(gmail: FakeGmail, sleep: RecordingSleep) -> GmailProvider:
    return GmailProvider(gmail.credential_source(), gmail.settings(lookup_grace_seconds=GRACE), sleep=sleep)


def outgoing(execution_id: int = 1, **overrides: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "execution_id": execution_id,
        "key": f"<outbound.9.{execution_id}@sales.example>",
        "channel": Channel.EMAIL,
        "sender_address": SENDER,
        "to": RECIPIENT,
        "subject": "Quick idea for Acme",
        "body": "Hi Jane,\n\nWorth a call?",
        "headers": dict(UNSUBSCRIBE),
    }
    values.update(overrides)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def follow_up(parent: SentReceipt, parent_key: str, execution_id: int = 2) -> OutgoingMessage:
    parent_id = parent.rfc_message_id or parent_key
    return outgoing(
        execution_id,
        subject="Re: Quick idea for Acme",
        body="Bumping this up.",
        in_reply_to=parent_id,
        references=(parent_id,),
        thread_id=parent.provider_thread_id,
    )


def send_requests(gmail: FakeGmail) -> list[dict[str, object]]:
    return [json.loads(request.body) for request in gmail.sends()]


# --- sending ------------------------------------------------------------------------------


def test_first_email_starts_a_thread_with_the_full_mime(gmail: FakeGmail, provider: GmailProvider) -> None:
    message = outgoing()
    receipt = provider.send(message)

    [stored] = gmail.sent(SENDER)
    assert receipt == SentReceipt(stored.id, stored.id, message.key)
    [request] = send_requests(gmail)
    assert "threadId" not in request
    mail = parse_mail(base64.urlsafe_b64decode(str(request["raw"])))
    assert mail["From"] == SENDER
    assert mail["To"] == RECIPIENT
    assert mail["Message-ID"] == message.key
    assert mail["X-Outbound-Execution"] == "1"
    assert mail["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]


def test_follow_up_lands_in_the_same_thread(gmail: FakeGmail, provider: GmailProvider) -> None:
    first = outgoing(1)
    parent = provider.send(first)
    receipt = provider.send(follow_up(parent, first.key))

    assert receipt.provider_thread_id == parent.provider_thread_id
    assert receipt.provider_message_id != parent.provider_message_id
    assert send_requests(gmail)[1]["threadId"] == parent.provider_thread_id
    mail = gmail.sent(SENDER)[1].mail
    assert mail["In-Reply-To"] == first.key
    assert str(mail["References"]).split() == [first.key]
    assert mail["Subject"] == "Re: Quick idea for Acme"
    # The fake records an error if threadId came without a proper reply (Gmail would split the thread).


def test_a_step_asking_for_a_new_thread_gets_one(provider: GmailProvider) -> None:
    parent = provider.send(outgoing(1))
    receipt = provider.send(outgoing(2, subject="Another idea"))

    assert receipt.provider_thread_id not in (None, parent.provider_thread_id)


def test_the_message_id_gmail_kept_is_read_back_and_threads_the_follow_up(
    gmail: FakeGmail, provider: GmailProvider
) -> None:
    gmail.replace_message_ids = True
    first = outgoing(1)
    parent = provider.send(first)

    [stored] = gmail.sent(SENDER)
    assert parent.rfc_message_id == stored.header("Message-ID")
    assert parent.rfc_message_id != first.key
    receipt = provider.send(follow_up(parent, first.key))
    assert receipt.provider_thread_id == parent.provider_thread_id
    assert gmail.sent(SENDER)[1].header("In-Reply-To") == parent.rfc_message_id


def test_a_failed_read_back_does_not_fail_the_send(gmail: FakeGmail, provider: GmailProvider) -> None:
    gmail.fail_next("get", BACKEND_ERROR)
    receipt = provider.send(outgoing())

    [stored] = gmail.sent(SENDER)
    assert receipt == SentReceipt(stored.id, stored.thread_id, None)


def test_a_deleted_parent_thread_sends_the_follow_up_in_a_new_thread(gmail: FakeGmail, provider: GmailProvider) -> None:
    first = outgoing(1)
    parent = provider.send(first)
    gone = SentReceipt(parent.provider_message_id, "ffffffffffffffff", parent.rfc_message_id)

    receipt = provider.send(follow_up(gone, first.key))

    assert receipt.provider_thread_id not in (None, parent.provider_thread_id, "ffffffffffffffff")
    assert len(gmail.sent(SENDER)) == 2
    assert gmail.sent(SENDER)[1].header("In-Reply-To") == first.key


def test_concurrent_sends_from_a_thread_pool(gmail: FakeGmail, provider: GmailProvider) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        receipts = list(pool.map(provider.send, [outgoing(i) for i in range(1, 19)]))

    assert len({receipt.provider_message_id for receipt in receipts}) == 18
    assert sorted(m.header("X-Outbound-Execution") for m in gmail.sent(SENDER)) == sorted(str(i) for i in range(1, 19))
    assert gmail.token_grants == 1  # the access token is shared, not refreshed per call


# --- exactly once -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drop", "500"])
def test_a_send_whose_response_is_lost_is_found_and_not_sent_again(
    gmail: FakeGmail, provider: GmailProvider, sleep: RecordingSleep, mode: str
) -> None:
    message = outgoing()
    gmail.fail_next("send", LostResponse(mode))  # type: ignore[arg-type]

    with pytest.raises(ProviderError) as failure:
        provider.send(message)
    assert failure.value.kind in (FailureKind.RETRYABLE, FailureKind.THROTTLED)  # retried either way
    receipt = provider.find_sent(message)

    [stored] = gmail.sent(SENDER)
    assert receipt == SentReceipt(stored.id, stored.thread_id, message.key)
    # httplib2 would silently POST again after a dropped connection; the client must not.
    assert len(gmail.sends()) == 1
    assert sleep.calls == []
    [search] = [request for request in gmail.requests if request.path.endswith("/messages")]
    assert search.query["q"] == ["rfc822msgid:outbound.9.1@sales.example"]
    assert search.query["includeSpamTrash"] == ["true"]


def test_lookup_falls_back_to_the_execution_header_when_gmail_replaced_the_message_id(
    gmail: FakeGmail, provider: GmailProvider
) -> None:
    gmail.replace_message_ids = True
    message = outgoing()
    gmail.fail_next("send", LostResponse("drop"))
    with pytest.raises(ProviderError):
        provider.send(message)

    receipt = provider.find_sent(message)

    [stored] = gmail.sent(SENDER)
    assert receipt is not None
    assert receipt.provider_message_id == stored.id
    assert receipt.rfc_message_id == stored.header("Message-ID") != message.key


def test_lookup_finds_a_recent_send_while_the_search_index_lags(
    gmail: FakeGmail, provider: GmailProvider, sleep: RecordingSleep
) -> None:
    gmail.search_lag_seconds = 60
    message = outgoing(5)
    provider.send(outgoing(4))
    provider.send(message)
    provider.send(outgoing(6))

    receipt = provider.find_sent(message)

    assert receipt is not None
    assert receipt.provider_message_id == gmail.sent(SENDER)[1].id
    assert sleep.calls == []


def test_a_miss_is_trusted_only_after_the_grace_wait(gmail: FakeGmail) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        gmail.advance(seconds)

    provider = GmailProvider(gmail.credential_source(), gmail.settings(lookup_grace_seconds=20), sleep=sleep)
    message = outgoing()
    provider.send(message)
    gmail.search_lag_seconds = gmail.listing_lag_seconds = 15  # every index misses it at first

    receipt = provider.find_sent(message)

    assert receipt is not None
    assert receipt.provider_message_id == gmail.sent(SENDER)[0].id
    assert waits == [20]


def test_a_message_never_sent_is_reported_absent_after_one_grace_wait(
    gmail: FakeGmail, provider: GmailProvider, sleep: RecordingSleep
) -> None:
    provider.send(outgoing(1))

    assert provider.find_sent(outgoing(2)) is None
    assert sleep.calls == [GRACE]


def test_another_execution_to_the_same_recipient_is_not_mistaken_for_this_one(
    gmail: FakeGmail, provider: GmailProvider
) -> None:
    gmail.replace_message_ids = True
    provider.send(outgoing(1))

    assert provider.find_sent(outgoing(2)) is None


def test_an_unsearchable_mailbox_means_delivery_unknown(gmail: FakeGmail, provider: GmailProvider) -> None:
    gmail.fail_next("list", UNAVAILABLE)

    with pytest.raises(DeliveryUnknown) as unknown:
        provider.find_sent(outgoing())
    assert RECIPIENT not in str(unknown.value)


def test_a_revoked_mailbox_cannot_prove_absence(gmail: FakeGmail, provider: GmailProvider) -> None:
    gmail.revoke(SENDER)

    with pytest.raises(DeliveryUnknown, match="auth_revoked"):
        provider.find_sent(outgoing())


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        (USER_RATE_LIMITED, FailureKind.THROTTLED, "userRateLimitExceeded"),
        (RATE_LIMITED, FailureKind.THROTTLED, "rateLimitExceeded"),
        (BACKEND_ERROR, FailureKind.THROTTLED, "backendError"),
        (UNAVAILABLE, FailureKind.THROTTLED, "backendError"),
        (DAILY_LIMIT, FailureKind.QUOTA_EXHAUSTED, "dailyLimitExceeded"),
        (SENDING_LIMIT, FailureKind.QUOTA_EXHAUSTED, "dailyLimitExceeded"),
        (
            HttpFault(403, "dailyLimitExceeded", "Daily user sending quota exceeded."),
            FailureKind.QUOTA_EXHAUSTED,
            "dailyLimitExceeded",
        ),
        (INVALID_TO, FailureKind.PERMANENT, "invalidArgument"),
        (HttpFault(400, "invalidArgument", "Recipient address required"), FailureKind.PERMANENT, "invalidArgument"),
        (HttpFault(400, "failedPrecondition", "Precondition check failed."), FailureKind.AUTH_REVOKED, None),
        (INSUFFICIENT_PERMISSIONS, FailureKind.AUTH_REVOKED, "insufficientPermissions"),
    ],
)
def test_gmail_errors_are_classified(
    gmail: FakeGmail, provider: GmailProvider, fault: HttpFault, kind: FailureKind, code: str | None
) -> None:
    gmail.fail_next("send", fault)

    with pytest.raises(ProviderError) as failure:
        provider.send(outgoing())

    assert failure.value.kind is kind
    assert failure.value.code == (code or fault.reason)
    assert RECIPIENT not in str(failure.value)
    assert gmail.sent(SENDER) == []


def test_an_invalid_recipient_is_permanent(gmail: FakeGmail, provider: GmailProvider) -> None:
    with pytest.raises(ProviderError) as failure:
        provider.send(outgoing(to="jane.at.acme"))

    assert failure.value.kind is FailureKind.PERMANENT
    assert "Invalid To header" in str(failure.value)
    assert "jane.at.acme" not in str(failure.value)


def test_a_revoked_grant_disables_the_mailbox(gmail: FakeGmail, provider: GmailProvider) -> None:
    provider.send(outgoing(1))
    gmail.revoke(SENDER)

    with pytest.raises(ProviderError) as failure:
        provider.send(outgoing(2))

    assert failure.value.kind is FailureKind.AUTH_REVOKED
    assert failure.value.code == "invalid_grant"
    assert len(gmail.sent(SENDER)) == 1


def test_network_failure_is_retryable(gmail: FakeGmail) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    settings = gmail.settings(api_endpoint=f"http://127.0.0.1:{closed_port}/")
    provider = GmailProvider(gmail.credential_source(), settings)

    with pytest.raises(ProviderError) as failure:
        provider.send(outgoing())

    assert failure.value.kind is FailureKind.RETRYABLE
    assert failure.value.code == "network"


# --- tokens -------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_before_the_call(gmail: FakeGmail, provider: GmailProvider) -> None:
    source = gmail.credential_source()
    expired = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None)
    source.overrides[SENDER] = gmail.credentials(SENDER, access_token="ya29.expired", expiry=expired)
    provider = GmailProvider(source, gmail.settings())

    provider.send(outgoing())

    assert gmail.token_grants == 1
    assert all(request.mailbox == SENDER for request in gmail.requests if "/gmail/" in request.path)


def test_a_token_rejected_by_the_api_is_refreshed_and_the_call_repeated(
    gmail: FakeGmail, provider: GmailProvider
) -> None:
    provider.send(outgoing(1))
    gmail.invalidate_access_tokens()

    provider.send(outgoing(2))

    assert gmail.token_grants == 2
    assert len(gmail.sent(SENDER)) == 2


def test_a_reconnected_mailbox_uses_its_new_grant(gmail: FakeGmail, provider: GmailProvider) -> None:
    provider.send(outgoing(1))
    gmail.revoke(SENDER)
    account = gmail.mailbox(SENDER).account
    account.refresh_token, account.revoked = "1//reconnected", False

    provider.send(outgoing(2))

    assert len(gmail.sent(SENDER)) == 2


# --- classification, pure -----------------------------------------------------------------


def http_error(status: int, reason: str | None, message: str = "") -> HttpError:
    errors = [{"message": message, "domain": "global", "reason": reason}] if reason else []
    content = json.dumps({"error": {"code": status, "message": message, "errors": errors}}).encode()
    return HttpError(httplib2.Response({"status": status}), content)


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (http_error(429, "rateLimitExceeded", "Rate Limit Exceeded"), FailureKind.THROTTLED, "rateLimitExceeded"),
        (http_error(403, "userRateLimitExceeded"), FailureKind.THROTTLED, "userRateLimitExceeded"),
        (http_error(403, "dailyLimitExceeded"), FailureKind.QUOTA_EXHAUSTED, "dailyLimitExceeded"),
        (
            http_error(
                429, "rateLimitExceeded", "User-rate limit exceeded.  Retry after 2030-01-01T00:00Z (Mail sending)"
            ),
            FailureKind.QUOTA_EXHAUSTED,
            "dailyLimitExceeded",
        ),
        (
            http_error(400, None, "Daily user sending limit exceeded."),
            FailureKind.QUOTA_EXHAUSTED,
            "dailyLimitExceeded",
        ),
        (http_error(400, "invalidArgument", "Invalid To header"), FailureKind.PERMANENT, "invalidArgument"),
        (http_error(400, "badRequest", "Recipient address required"), FailureKind.PERMANENT, "badRequest"),
        (http_error(401, "authError", "Invalid Credentials"), FailureKind.AUTH_REVOKED, "authError"),
        (http_error(404, "notFound"), FailureKind.PERMANENT, "notFound"),
        (http_error(413, None), FailureKind.PERMANENT, "http_413"),
        (http_error(500, "backendError"), FailureKind.THROTTLED, "backendError"),
        (http_error(502, None), FailureKind.THROTTLED, "http_502"),
        (HttpError(httplib2.Response({"status": 503}), b"<html>oops</html>"), FailureKind.THROTTLED, "http_503"),
        (
            RefreshError("invalid_grant: Token has been expired or revoked.", {"error": "invalid_grant"}),
            FailureKind.AUTH_REVOKED,
            "invalid_grant",
        ),
        (RefreshError("unauthorized_client: Unauthorized"), FailureKind.AUTH_REVOKED, "unauthorized_client"),
        (RefreshError("server error", {"error": "internal"}, retryable=True), FailureKind.RETRYABLE, "token_refresh"),
        (TransportError("connection refused"), FailureKind.RETRYABLE, "network"),
        (TimeoutError("timed out"), FailureKind.RETRYABLE, "network"),
        (ConnectionResetError(104, "reset"), FailureKind.RETRYABLE, "network"),
        (httplib2.ServerNotFoundError("Unable to find the server"), FailureKind.RETRYABLE, "network"),
    ],
)
def test_classify_gmail_error(error: BaseException, kind: FailureKind, code: str) -> None:
    classified = classify_gmail_error(error)

    assert (classified.kind, classified.code) == (kind, code)


def test_classified_messages_never_carry_addresses() -> None:
    error = http_error(400, "invalidArgument", "Invalid recipient: jane@acme.test, bob@acme.test")

    assert "@" not in str(classify_gmail_error(error))
    assert "Invalid recipient" in str(classify_gmail_error(error))


# --- the read side ------------------------------------------------------------------------


@pytest.fixture
def mailbox(gmail: FakeGmail) -> GmailMailbox:
    return GmailMailbox(gmail.credential_source(), gmail.settings())


def inbound(subject: str = "Hello", sender: str = "bob@acme.test") -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = SENDER
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{subject.replace(' ', '.')}@acme.test>"
    mail.set_content("inbound")
    return bytes(mail)


def test_history_lists_added_messages_and_advances_the_cursor(gmail: FakeGmail, mailbox: GmailMailbox) -> None:
    start = mailbox.profile_history_id(SENDER)
    first = gmail.deliver(SENDER, inbound("one"))
    second = gmail.deliver(SENDER, inbound("two"))

    page = mailbox.changes_since(SENDER, start)

    assert page.message_ids == [first.id, second.id]
    assert page.next_page_token is None
    assert page.history_id == str(gmail.history_id(SENDER)) == mailbox.profile_history_id(SENDER)
    assert mailbox.changes_since(SENDER, page.history_id).message_ids == []


def test_history_skips_the_mailboxs_own_sends_and_drafts(
    gmail: FakeGmail, mailbox: GmailMailbox, provider: GmailProvider
) -> None:
    start = mailbox.profile_history_id(SENDER)
    provider.send(outgoing())
    gmail.deliver(SENDER, inbound("draft"), labels=["DRAFT"])
    to_self = gmail.deliver(SENDER, inbound("note to self", sender=SENDER), labels=["SENT", "INBOX"])
    received = gmail.deliver(SENDER, inbound())

    page = mailbox.changes_since(SENDER, start)

    assert page.message_ids == [to_self.id, received.id]
    assert page.history_id == str(gmail.history_id(SENDER))


def test_history_pages(gmail: FakeGmail, mailbox: GmailMailbox) -> None:
    start = mailbox.profile_history_id(SENDER)
    delivered = [gmail.deliver(SENDER, inbound(f"m {n}")).id for n in range(130)]

    first = mailbox.changes_since(SENDER, start)
    second = mailbox.changes_since(SENDER, start, first.next_page_token)

    assert first.next_page_token is not None
    assert second.next_page_token is None
    assert first.message_ids + second.message_ids == delivered


def test_expired_history_asks_for_a_full_resync(gmail: FakeGmail, mailbox: GmailMailbox) -> None:
    start = mailbox.profile_history_id(SENDER)
    gmail.deliver(SENDER, inbound())
    gmail.expire_history(SENDER)

    with pytest.raises(HistoryExpired):
        mailbox.changes_since(SENDER, start)


def test_recent_messages_exclude_what_the_mailbox_sent(
    gmail: FakeGmail, mailbox: GmailMailbox, provider: GmailProvider
) -> None:
    provider.send(outgoing())
    received = gmail.deliver(SENDER, inbound())
    gmail.deliver(SENDER, inbound("draft"), labels=["DRAFT"])
    old = gmail.deliver(SENDER, inbound("old"), internal_date=datetime.now(UTC) - timedelta(days=30))

    ids, token = mailbox.recent_message_ids(SENDER, 7)

    assert ids == [received.id]
    assert old.id not in ids
    assert token is None


def test_fetch_returns_the_raw_message_of_a_reply_in_the_campaign_thread(
    gmail: FakeGmail, mailbox: GmailMailbox, provider: GmailProvider
) -> None:
    receipt = provider.send(outgoing())
    original: StoredMessage = gmail.sent(SENDER)[0]
    reply = gmail.reply(SENDER, original, sender=RECIPIENT)

    fetched = mailbox.fetch(SENDER, reply.id)

    assert fetched.id == reply.id
    assert fetched.thread_id == receipt.provider_thread_id
    assert fetched.label_ids == ["INBOX", "UNREAD"]
    assert fetched.raw == reply.raw
    assert fetched.internal_date.tzinfo is not None
    assert abs((fetched.internal_date - datetime.now(UTC)).total_seconds()) < 60
    assert parse_mail(fetched.raw)["In-Reply-To"] == outgoing().key


def test_fetching_a_deleted_message(gmail: FakeGmail, mailbox: GmailMailbox) -> None:
    with pytest.raises(MessageGone):
        mailbox.fetch(SENDER, "0123456789abcdef")


def test_read_side_errors_are_classified(gmail: FakeGmail, mailbox: GmailMailbox) -> None:
    gmail.fail_next("profile", BACKEND_ERROR)
    with pytest.raises(ProviderError) as transient:
        mailbox.profile_history_id(SENDER)
    assert transient.value.kind is FailureKind.THROTTLED

    gmail.revoke(SENDER)
    with pytest.raises(ProviderError) as revoked:
        mailbox.changes_since(SENDER, "1")
    assert revoked.value.kind is FailureKind.AUTH_REVOKED


# --- the fake itself ----------------------------------------------------------------------


def test_the_fake_catches_malformed_requests(gmail: FakeGmail) -> None:
    """The fake is only a specification if it refuses what Gmail would not take from a correct client."""
    service = GmailServices(gmail.credential_source(), gmail.settings()).service(SENDER)
    messages = service.users().messages()
    good = GmailProvider(gmail.credential_source(), gmail.settings()).send(outgoing(1))

    def raw(mail: EmailMessage) -> str:
        return base64.urlsafe_b64encode(bytes(mail)).decode()

    no_message_id = EmailMessage()
    no_message_id["From"], no_message_id["To"], no_message_id["Subject"] = SENDER, RECIPIENT, "x"
    wrong_thread = EmailMessage()
    wrong_thread["From"], wrong_thread["To"], wrong_thread["Subject"] = SENDER, RECIPIENT, "Unrelated"
    wrong_thread["Date"], wrong_thread["Message-ID"] = "Mon, 02 Mar 2026 09:00:00 +0000", "<w@sales.example>"
    attempts = [
        {"raw": raw(no_message_id)},
        {"raw": "not base64url!"},
        {"raw": raw(wrong_thread), "threadId": good.provider_thread_id},
    ]
    for body in attempts:
        with pytest.raises(HttpError) if "threadId" not in body else nullcontext():
            messages.send(userId="me", body=body).execute()
    with pytest.raises(HttpError):
        messages.list(userId="me", q="from:someone").execute()

    assert [error.split(":")[0] for error in gmail.errors] == ["send", "send", "send", "list"]
    assert "no Message-ID header" in gmail.errors[0]
    assert "Subject differs" in gmail.errors[2]
    gmail.errors.clear()
