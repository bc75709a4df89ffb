"""Email through the Gmail API (`users.messages.send`), exactly once per step execution.

The Message-ID is the idempotency key: a send retried after a lost response first looks for
it in the mailbox (R3). Gmail's search index lags behind the mailbox, so a miss is trusted
only after also scanning the most recent sent mail by the `X-Outbound-Execution` header and
waiting `lookup_grace_seconds` once.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from email.utils import parseaddr
from typing import Any

import httplib2  # type: ignore[import-untyped]
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.errors import HttpError  # type: ignore[import-untyped]

from providers.base import DeliveryUnknown, FailureKind, OutgoingMessage, ProviderError, SentReceipt
from providers.gmail_auth import CredentialSource, GmailServices
from providers.mime import EXECUTION_HEADER, angle_addr, build_email, serialise
from runtime.settings import GmailSettings

log = logging.getLogger(__name__)

# What a Gmail call can raise besides a bug in our code: API errors, token refresh, network.
GMAIL_ERRORS: tuple[type[BaseException], ...] = (
    HttpError,
    RefreshError,
    TransportError,
    OSError,
    httplib2.HttpLib2Error,
    http.client.HTTPException,
)
RECENT_SENT_SCAN = 20  # consistent label listing, covers a lagging search index
SENT_SEARCH_DAYS = 7  # `in:sent to:` search, covers a Message-ID Gmail replaced

_AUTH_ERRORS = frozenset({"invalid_grant", "unauthorized_client", "invalid_client", "access_denied"})
_RATE_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded", "concurrentLimitExceeded"})
_ACCOUNT_REASONS = frozenset({"insufficientPermissions", "domainPolicy", "failedPrecondition", "authError"})
_DAILY_SENDING = re.compile(r"daily user sending (quota|limit)|\(mail sending\)|sending limit exceeded", re.IGNORECASE)
_EMAIL_ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


class GmailProvider:
    name = "gmail"

    def __init__(
        self,
        credentials: CredentialSource,
        settings: GmailSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.services = GmailServices(credentials, settings)
        self._sleep = sleep

    def send(self, message: OutgoingMessage) -> SentReceipt:
        raw = base64.urlsafe_b64encode(serialise(build_email(message), crlf=True)).decode("ascii")
        try:
            service = self.services.service(message.sender_address)
            sent = self._send_raw(service, raw, message.thread_id)
        except GMAIL_ERRORS as error:
            raise self._classified(message.sender_address, error) from error
        return SentReceipt(
            provider_message_id=sent["id"],
            provider_thread_id=sent.get("threadId"),
            rfc_message_id=self._kept_message_id(service, sent["id"]),
        )

    def find_sent(self, message: OutgoingMessage) -> SentReceipt | None:
        try:
            service = self.services.service(message.sender_address)
            receipt = self._lookup(service, message)
            if receipt is None and self.settings.lookup_grace_seconds > 0:
                self._sleep(self.settings.lookup_grace_seconds)
                receipt = self._lookup(service, message)
        except GMAIL_ERRORS as error:
            failure = self._classified(message.sender_address, error)
            raise DeliveryUnknown(f"cannot search the sending mailbox: {failure} ({failure.kind})") from error
        return receipt

    def _send_raw(self, service: Any, raw: str, thread_id: str | None) -> dict[str, Any]:
        body = {"raw": raw, **({"threadId": thread_id} if thread_id else {})}
        try:
            return dict(service.users().messages().send(userId="me", body=body).execute())
        except HttpError as error:
            if not (thread_id and error.resp.status == 404):
                raise
        # The parent thread is gone (deleted by the mailbox owner); a 404 sent nothing, so the
        # follow-up goes out with its In-Reply-To/References but in a thread of its own.
        log.info("gmail: parent thread not found, sending the follow-up in a new thread")
        return dict(service.users().messages().send(userId="me", body={"raw": raw}).execute())

    def _kept_message_id(self, service: Any, gmail_id: str) -> str | None:
        """The Message-ID Gmail stored, which follow-ups must reference. The message is already
        out, so a failed read-back is logged rather than raised."""
        try:
            return _header(_metadata(service, gmail_id, ["Message-ID"]), "Message-ID")
        except GMAIL_ERRORS as error:
            log.warning("gmail: message sent but its Message-ID could not be read back: %s", _describe(error))
            return None

    def _lookup(self, service: Any, message: OutgoingMessage) -> SentReceipt | None:
        key = angle_addr(message.key).strip("<>")  # Gmail documents the operator without brackets
        for gmail_id in _search(service, f"rfc822msgid:{key}", include_spam_trash=True):
            if (receipt := _receipt_if_ours(service, gmail_id, message, require_execution=False)) is not None:
                return receipt
        recent = _list_ids(service, label_ids=["SENT"], max_results=RECENT_SENT_SCAN)
        recipient = parseaddr(message.to)[1] or message.to
        searched = _search(service, f"in:sent to:{recipient} newer_than:{SENT_SEARCH_DAYS}d", include_spam_trash=True)
        seen: set[str] = set()
        for gmail_id in (*recent, *searched):
            if gmail_id in seen:
                continue
            seen.add(gmail_id)
            if (receipt := _receipt_if_ours(service, gmail_id, message, require_execution=True)) is not None:
                return receipt
        return None

    def _classified(self, address: str, error: BaseException) -> ProviderError:
        failure = classify_gmail_error(error)
        if failure.kind is FailureKind.AUTH_REVOKED:
            self.services.forget(address)
        return failure


def classify_gmail_error(error: BaseException) -> ProviderError:
    """Map what the Gmail client raised onto the provider contract. The message never carries
    recipient data: Gmail's own text is included only with addresses redacted."""
    if isinstance(error, RefreshError):
        return _classify_refresh(error)
    if isinstance(error, HttpError):
        return _classify_http(error)
    if isinstance(error, TransportError | OSError | httplib2.HttpLib2Error | http.client.HTTPException):
        return ProviderError(FailureKind.RETRYABLE, f"Gmail unreachable: {_describe(error)}", "network")
    return ProviderError(FailureKind.RETRYABLE, f"unexpected Gmail client error: {type(error).__name__}", "unexpected")


def _classify_refresh(error: RefreshError) -> ProviderError:
    data = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else {}
    code = str(data.get("error") or "")
    if not code and error.args and isinstance(error.args[0], str):
        code = error.args[0].split(":", 1)[0].strip()
    if code in _AUTH_ERRORS:
        return ProviderError(FailureKind.AUTH_REVOKED, f"Gmail authorisation no longer valid ({code})", code)
    if error.retryable:
        return ProviderError(FailureKind.RETRYABLE, "Google token endpoint temporarily unavailable", "token_refresh")
    # Any other refusal of the token endpoint means these credentials cannot send.
    return ProviderError(FailureKind.AUTH_REVOKED, "Gmail token refresh refused", code or "refresh_failed")


def _classify_http(error: HttpError) -> ProviderError:
    status = int(error.resp.status)
    reasons, text = _error_details(error)
    reason = reasons[0] if reasons else f"http_{status}"
    message = f"Gmail API {status} {reason}: {_redact(text)}" if text else f"Gmail API {status} {reason}"
    if "dailyLimitExceeded" in reasons or _DAILY_SENDING.search(text):
        return ProviderError(FailureKind.QUOTA_EXHAUSTED, message, "dailyLimitExceeded")
    if status == 401 or _ACCOUNT_REASONS.intersection(reasons):
        return ProviderError(FailureKind.AUTH_REVOKED, message, reason)
    if status == 429 or status >= 500 or _RATE_REASONS.intersection(reasons):
        return ProviderError(FailureKind.THROTTLED, message, reason)
    if status == 408:
        return ProviderError(FailureKind.RETRYABLE, message, reason)
    return ProviderError(FailureKind.PERMANENT, message, reason)


def _error_details(error: HttpError) -> tuple[list[str], str]:
    """The `errors[].reason` list and message of Google's JSON error body."""
    try:
        payload = json.loads(error.content.decode("utf-8"))
    except (ValueError, AttributeError):
        return [], str(getattr(error, "reason", "") or "")
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict):
        return [], str(body or "")
    listed = body.get("errors")
    details = listed if isinstance(listed, list) else []
    reasons = [str(item["reason"]) for item in details if isinstance(item, dict) and item.get("reason")]
    return reasons, str(body.get("message") or "")


def _redact(text: str) -> str:
    return _EMAIL_ADDRESS.sub("<redacted>", text)[:300]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {_redact(str(error))}" if str(error) else type(error).__name__


def _search(service: Any, query: str, *, include_spam_trash: bool) -> list[str]:
    return _list_ids(service, q=query, include_spam_trash=include_spam_trash, max_results=50)


def _list_ids(
    service: Any,
    *,
    q: str | None = None,
    label_ids: list[str] | None = None,
    include_spam_trash: bool = False,
    max_results: int,
) -> list[str]:
    """One page of message ids, newest first: the lookup only cares about recent mail."""
    response = (
        service.users()
        .messages()
        .list(userId="me", q=q, labelIds=label_ids, includeSpamTrash=include_spam_trash, maxResults=max_results)
        .execute()
    )
    return [str(item["id"]) for item in response.get("messages", [])]


def _metadata(service: Any, gmail_id: str, headers: list[str]) -> dict[str, Any]:
    request = service.users().messages().get(userId="me", id=gmail_id, format="metadata", metadataHeaders=headers)
    return dict(request.execute())


def _header(resource: dict[str, Any], name: str) -> str | None:
    for header in _headers(resource):
        if str(header.get("name", "")).lower() == name.lower():
            return str(header.get("value", "")).strip() or None
    return None


def _headers(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    payload = resource.get("payload") or {}
    yield from payload.get("headers") or []


def _receipt_if_ours(
    service: Any, gmail_id: str, message: OutgoingMessage, *, require_execution: bool
) -> SentReceipt | None:
    """The receipt of `gmail_id` when it is this execution's message. A Message-ID match is
    proof enough; otherwise (Gmail may replace the Message-ID) the execution header must match."""
    resource = _metadata(service, gmail_id, ["Message-ID", EXECUTION_HEADER])
    kept = _header(resource, "Message-ID")
    execution = _header(resource, EXECUTION_HEADER)
    if execution is not None:
        ours = execution == str(message.execution_id)
    else:
        ours = not require_execution and kept is not None and kept.lower() == angle_addr(message.key).lower()
    if not ours:
        return None
    return SentReceipt(
        provider_message_id=str(resource["id"]),
        provider_thread_id=resource.get("threadId"),
        rfc_message_id=kept,
    )
