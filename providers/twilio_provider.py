"""Twilio SMS and voicemail drops through the official SDK, with exactly-once look-ups.

Twilio has no idempotency key, so a send whose response was lost can only be recovered by
searching the account's records (R3). The search deliberately does not use Twilio's
`DateSent>` / `StartTime>` filters: a message or call that is still `queued` has neither
date yet, and it is exactly the record a retry seconds after a lost response must find.
Records are instead listed by recipient and sender (a short list: only our own outreach
goes from one sender to one contact) and filtered on `date_created` here, from the moment
the execution entered SENDING (`OutgoingMessage.sending_since`): anything older belongs to
another step, which to the same number may carry the same text or, for a call, nothing to
tell them apart. When the list is longer than we are willing to read, absence is unproven
and the look-up says so.

Error text from Twilio often repeats the phone number, and errors end up in workflow
history, so every error raised here is built from the code and a fixed description only,
and raised `from None` so the SDK's exception is not serialized as its cause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from requests import RequestException
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from providers.base import DeliveryUnknown, FailureKind, OutgoingMessage, ProviderError, SentReceipt
from runtime.settings import TwilioSettings

# The SDK logs every request URL with its query string (phone numbers) at INFO.
_SDK_LOGGER = logging.getLogger("outbound.providers.twilio.sdk")
_SDK_LOGGER.setLevel(logging.WARNING)

DEFAULT_TIMEOUT_SECONDS = 20.0  # a send activity has ~60 s, and a look-up may read a few pages
SEARCH_PAGE_SIZE = 50
MAX_SEARCHED_RECORDS = 200  # beyond this many records for one sender/recipient pair, absence is unproven
# A look-up starts this long before `sending_since`: Twilio stamps `date_created` in whole
# seconds by its own clock, so a record created just after our clock read `sending_since`
# can carry a stamp up to a second earlier, more if the clocks disagree. An earlier step's
# record was created before that step's row turned SENT, so before this step was even
# planned (R1): it falls inside the margin only when two steps to one number follow within
# seconds of each other (a zero wait).
CLOCK_SKEW_MARGIN = timedelta(seconds=5)
VOICEMAIL_STATUS_EVENTS = ["completed"]  # the completed callback carries AnsweredBy and the duration

# Everything a Twilio call can raise besides programming errors: API answers (TwilioRestException,
# TwilioServiceException), unreadable pages (TwilioException), the network (requests), bad JSON.
SDK_ERRORS: tuple[type[Exception], ...] = (TwilioException, RequestException, ValueError)

_PERMANENT = FailureKind.PERMANENT
_RETRYABLE = FailureKind.RETRYABLE
_THROTTLED = FailureKind.THROTTLED
_AUTH = FailureKind.AUTH_REVOKED

TWILIO_ERROR_CODES: dict[int, tuple[FailureKind, str]] = {
    20003: (_AUTH, "authentication failed: the account SID or auth token is wrong or revoked"),
    20005: (_AUTH, "the Twilio account is not active"),
    30002: (_AUTH, "the Twilio account is suspended"),
    20429: (_THROTTLED, "too many requests"),
    20500: (_THROTTLED, "Twilio internal error"),
    20503: (_THROTTLED, "Twilio service unavailable"),
    14107: (_THROTTLED, "the sender's SMS rate limit was exceeded"),
    21611: (_THROTTLED, "the sender's queue of outgoing messages is full"),
    30001: (_THROTTLED, "Twilio's message queue overflowed"),
    63038: (FailureKind.QUOTA_EXHAUSTED, "the account's daily message limit was reached"),
    20404: (_PERMANENT, "the Twilio resource does not exist"),
    21205: (_PERMANENT, "the voice URL is not a valid public URL"),
    21210: (_PERMANENT, "the caller ID is not a verified number of the account"),
    21211: (_PERMANENT, "the recipient's phone number is invalid"),
    21212: (_PERMANENT, "the sender's phone number is invalid"),
    21214: (_PERMANENT, "the recipient's phone number cannot be reached"),
    21215: (_PERMANENT, "the account's geographic permissions do not allow calling this destination"),
    21216: (_PERMANENT, "the account may not call premium-rate numbers"),
    21217: (_PERMANENT, "the recipient's phone number does not appear to be valid"),
    21219: (_PERMANENT, "trial accounts may only reach verified numbers"),
    21401: (_PERMANENT, "the phone number is invalid"),
    21408: (_PERMANENT, "the account has no permission to send SMS to this region"),
    21421: (_PERMANENT, "the phone number is invalid"),
    21601: (_PERMANENT, "the sender's number cannot send SMS"),
    21602: (_PERMANENT, "the message body is empty"),
    21606: (_PERMANENT, "the sender's number cannot send SMS to this destination"),
    21608: (_PERMANENT, "trial accounts may only text verified numbers"),
    21610: (_PERMANENT, "the recipient has unsubscribed (replied STOP) from this sender"),
    21612: (_PERMANENT, "the recipient cannot be reached by SMS from this sender"),
    21614: (_PERMANENT, "the recipient's number is not a mobile number"),
    21617: (_PERMANENT, "the message body is longer than 1600 characters"),
    21635: (_PERMANENT, "the recipient's number is a landline"),
    21659: (_PERMANENT, "the sender's number is not a Twilio number of this account"),
    21660: (_PERMANENT, "the sender's number belongs to another account"),
    30003: (_PERMANENT, "the recipient's handset is unreachable"),
    30004: (_PERMANENT, "the message was blocked"),
    30005: (_PERMANENT, "the recipient's number is unknown or no longer exists"),
    30006: (_PERMANENT, "the recipient's number is a landline or its carrier is unreachable"),
    30007: (_PERMANENT, "the carrier filtered the message"),
}

UNSUBSCRIBED_CODE = "21610"  # a permanent failure that also means the contact opted out


def classify_twilio_error(error: BaseException) -> ProviderError:
    """Map any failure of a Twilio call to one ProviderError, never quoting Twilio's text.

    Known error codes decide first; otherwise the HTTP status does (429 and 5xx retry,
    401 means the credentials stopped working, any other 4xx will not get better).
    Transport failures retry: the retry's look-up (R3) finds a send that did go through.
    """
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, TwilioRestException | TwilioServiceException):
        return _classify_response(_as_int(getattr(error, "status", None)), _as_int(getattr(error, "code", None)))
    if isinstance(error, SDK_ERRORS):
        return ProviderError(_RETRYABLE, f"twilio: no usable response ({type(error).__name__})", "network")
    return ProviderError(_RETRYABLE, f"twilio: unexpected {type(error).__name__}", "unexpected")


def _classify_response(status: int | None, code: int | None) -> ProviderError:
    if code is not None and code == status:
        code = None  # the SDK repeats the HTTP status as the code when the body had none
    http = f"HTTP {status}" if status is not None else "HTTP ?"
    if code is not None and code in TWILIO_ERROR_CODES:
        kind, description = TWILIO_ERROR_CODES[code]
        return ProviderError(kind, f"twilio {code} ({http}): {description}", str(code))
    label = str(code) if code is not None else f"http_{status}"
    if status is not None and (status == 429 or status >= 500):
        return ProviderError(_THROTTLED, f"twilio {label} ({http}): temporary failure", label)
    if status is None or status == 408:
        return ProviderError(_RETRYABLE, f"twilio {label} ({http}): temporary failure", label)
    if status == 401:
        return ProviderError(_AUTH, f"twilio {label} ({http}): the credentials were rejected", label)
    return ProviderError(_PERMANENT, f"twilio {label} ({http}): request rejected", label)


def _as_int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def make_twilio_client(settings: TwilioSettings, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Client:
    """A real `twilio.rest.Client` with a request timeout (the SDK has none by default).

    `api_base` replaces the `api` domain's `base_url`, the one place the SDK keeps the host, so a
    fake is reached through the SDK's own request, paging and error handling."""
    if not settings.account_sid or settings.auth_token is None:
        raise ValueError("Twilio is not configured: set OUTBOUND_TWILIO__ACCOUNT_SID and OUTBOUND_TWILIO__AUTH_TOKEN")
    token = settings.auth_token.get_secret_value()
    http_client = TwilioHttpClient(timeout=timeout_seconds, logger=_SDK_LOGGER)
    client = Client(settings.account_sid, token, account_sid=settings.account_sid, http_client=http_client)
    if settings.api_base:
        client.api.base_url = settings.api_base.rstrip("/")
        client.edge = client.region = None  # TWILIO_EDGE/REGION would rewrite the fake's host name
    return client


class _TwilioProvider:
    """Shared wiring: one SDK client, the search window and error translation."""

    name = "twilio"
    default_lookback: ClassVar[timedelta]

    def __init__(
        self, settings: TwilioSettings, client: Client | None = None, *, lookback: timedelta | None = None
    ) -> None:
        self.client = client if client is not None else make_twilio_client(settings)
        self.lookback = lookback if lookback is not None else self.default_lookback

    def _search(self, records: Callable[[], Iterable[Any]], what: str) -> list[Any]:
        """Materialize a listing, turning any failure into "we cannot tell"."""
        try:
            return list(records())
        except SDK_ERRORS as error:
            status = getattr(error, "status", None)
            detail = f"HTTP {status}" if status is not None else type(error).__name__
            raise DeliveryUnknown(f"twilio: searching {what} failed ({detail}); absence is unproven") from None

    def _window(self, records: list[Any], what: str, message: OutgoingMessage) -> list[Any]:
        """Records created since this execution entered SENDING (less the clock margin) and
        inside the look-back window, or DeliveryUnknown when the list was cut short.

        The look-back alone bounds rows from before `sending_since` was recorded, and still
        caps a row stuck in SENDING for longer. The bound is applied here, on `date_created`,
        not as Twilio's `DateSent>` / `StartTime>` filters, which skip queued records."""
        if len(records) > MAX_SEARCHED_RECORDS:
            raise DeliveryUnknown(f"twilio: more than {MAX_SEARCHED_RECORDS} {what} for this pair; absence is unproven")
        since = datetime.now(UTC) - self.lookback
        if message.sending_since is not None:
            since = max(since, message.sending_since - CLOCK_SKEW_MARGIN)
        return [record for record in records if record.date_created is None or record.date_created >= since]


class TwilioSmsProvider(_TwilioProvider):
    """SMS through `messages.create`; delivery reports arrive at the status callback."""

    # Without `sending_since`, a body match is all that tells this step's message from an
    # earlier one; the window only bounds how far back a row from before it looks.
    default_lookback = timedelta(days=7)

    def send(self, message: OutgoingMessage) -> SentReceipt:
        if not message.body:
            raise ProviderError(_PERMANENT, "twilio: an SMS needs a body", "empty_body")
        try:
            created = self.client.messages.create(
                to=message.to,
                from_=message.sender_address,
                body=message.body,
                status_callback=message.status_callback,
            )
        except SDK_ERRORS as error:
            raise classify_twilio_error(error) from None
        return SentReceipt(provider_message_id=str(created.sid))

    def find_sent(self, message: OutgoingMessage) -> SentReceipt | None:
        records = self._search(
            lambda: self.client.messages.stream(
                to=message.to,
                from_=message.sender_address,
                limit=MAX_SEARCHED_RECORDS + 1,
                page_size=SEARCH_PAGE_SIZE,
            ),
            "messages",
        )
        for record in self._window(records, "messages", message):
            if _same_body(record.body, message.body):
                return SentReceipt(provider_message_id=str(record.sid))
        return None


def _same_body(sent: str | None, ours: str | None) -> bool:
    """Twilio may append opt-out language ("Reply STOP...") to what we sent."""
    return sent is not None and bool(ours) and sent.startswith(ours or "")


class TwilioVoicemailProvider(_TwilioProvider):
    """Voicemail drops: a call with answering-machine detection whose TwiML (served at
    `voice_url`, see `domain.voicemail_twiml`) plays the message once the greeting ends."""

    # A call carries no content to match, so any call to the contact in the window counts as
    # ours. `sending_since` keeps an earlier step's call out; without it (rows from before it
    # was recorded) only this short window does.
    default_lookback = timedelta(days=2)

    def send(self, message: OutgoingMessage) -> SentReceipt:
        if not message.voice_url:
            raise ProviderError(
                _PERMANENT,
                "twilio: a voicemail needs a public voice URL; configure the API service's public URL "
                "(OUTBOUND_PUBLIC_BASE_URL) so Twilio can fetch the message",
                "no_voice_url",
            )
        if not (message.say or message.audio_url):
            raise ProviderError(_PERMANENT, "twilio: a voicemail needs text to say or an audio URL", "empty_voicemail")
        try:
            created = self.client.calls.create(
                to=message.to,
                from_=message.sender_address,
                url=message.voice_url,
                machine_detection="DetectMessageEnd",
                async_amd="false",  # Twilio then requests `url` only after detection, with AnsweredBy
                status_callback=message.status_callback,
                status_callback_event=VOICEMAIL_STATUS_EVENTS if message.status_callback else None,
            )
        except SDK_ERRORS as error:
            raise classify_twilio_error(error) from None
        return SentReceipt(provider_message_id=str(created.sid))

    def find_sent(self, message: OutgoingMessage) -> SentReceipt | None:
        records = self._search(
            lambda: self.client.calls.stream(
                to=message.to,
                from_=message.sender_address,
                limit=MAX_SEARCHED_RECORDS + 1,
                page_size=SEARCH_PAGE_SIZE,
            ),
            "calls",
        )
        calls = self._window(records, "calls", message)
        if not calls:
            return None
        newest = max(calls, key=lambda call: call.date_created or datetime.max.replace(tzinfo=UTC))
        return SentReceipt(provider_message_id=str(newest.sid))
