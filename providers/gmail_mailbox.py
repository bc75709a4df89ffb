"""The read side of a Gmail mailbox, for the inbound sync (replies, bounces, opt-outs).

The sync follows Gmail's history (`history.list` from the last seen historyId), which is
cheap and complete; when Gmail no longer has that history (404) the caller falls back to
a full resync of recent mail. Errors are classified like the send side, so a revoked
grant is recognisable (FailureKind.AUTH_REVOKED) and disables the mailbox.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from googleapiclient.errors import HttpError  # type: ignore[import-untyped]

from providers.base import FailureKind, ProviderError
from providers.gmail import GMAIL_ERRORS, classify_gmail_error
from providers.gmail_auth import CredentialSource, GmailServices
from runtime.settings import GmailSettings

PAGE_SIZE = 100


class HistoryExpired(Exception):
    """Gmail no longer keeps history from this id (typically after a week): resync in full."""


class MessageGone(Exception):
    """The message was deleted between being listed and being fetched: nothing to process."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    message_ids: list[str]  # received messages only: the mailbox's own sends and drafts cost no fetch
    next_page_token: str | None
    history_id: str  # the mailbox's latest historyId: the cursor once every page is processed


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    id: str
    thread_id: str
    label_ids: list[str]
    internal_date: datetime  # UTC, when Gmail received the message
    raw: bytes  # the RFC 5322 message as received


class GmailMailbox:
    def __init__(self, credentials: CredentialSource, settings: GmailSettings) -> None:
        self.services = GmailServices(credentials, settings)

    def profile_history_id(self, address: str) -> str:
        """The starting cursor for a mailbox that has never been synced."""
        profile = self._call(address, lambda users: users.getProfile(userId="me"))
        return str(profile["historyId"])

    def changes_since(self, address: str, history_id: str, page_token: str | None = None) -> HistoryPage:
        response = self._call(
            address,
            lambda users: users.history().list(
                userId="me",
                startHistoryId=history_id,
                historyTypes=["messageAdded"],
                pageToken=page_token,
                maxResults=PAGE_SIZE,
            ),
            not_found=HistoryExpired(f"history from {history_id} is no longer available"),
        )
        ids: list[str] = []
        for record in response.get("history") or []:
            for added in record.get("messagesAdded") or []:
                message = added["message"]
                message_id = str(message["id"])
                if _received(message.get("labelIds")) and message_id not in ids:
                    ids.append(message_id)
        return HistoryPage(
            message_ids=ids,
            next_page_token=response.get("nextPageToken"),
            history_id=str(response.get("historyId") or history_id),
        )

    def recent_message_ids(
        self, address: str, newer_than_days: int, page_token: str | None = None
    ) -> tuple[list[str], str | None]:
        """Received mail of the last days, for a full resync. Spam and trash are included:
        a reply filtered as spam is still a reply."""
        response = self._call(
            address,
            lambda users: users.messages().list(
                userId="me",
                q=f"newer_than:{newer_than_days}d -in:sent -in:drafts",
                includeSpamTrash=True,
                pageToken=page_token,
                maxResults=PAGE_SIZE,
            ),
        )
        return [str(item["id"]) for item in response.get("messages") or []], response.get("nextPageToken")

    def fetch(self, address: str, message_id: str) -> FetchedMessage:
        resource = self._call(
            address,
            lambda users: users.messages().get(userId="me", id=message_id, format="raw"),
            not_found=MessageGone(f"message {message_id} no longer exists"),
        )
        return FetchedMessage(
            id=str(resource["id"]),
            thread_id=str(resource["threadId"]),
            label_ids=[str(label) for label in resource.get("labelIds") or []],
            internal_date=datetime.fromtimestamp(int(resource["internalDate"]) / 1000, UTC),
            raw=_decode_base64url(str(resource["raw"])),
        )

    def _call(self, address: str, request: Callable[[Any], Any], not_found: Exception | None = None) -> dict[str, Any]:
        """Run one API call; a 404 becomes `not_found` when given, anything else is classified."""
        try:
            return dict(request(self.services.service(address).users()).execute())
        except HttpError as error:
            if not_found is not None and error.resp.status == 404:
                raise not_found from error
            raise self._classified(address, error) from error
        except GMAIL_ERRORS as error:
            raise self._classified(address, error) from error

    def _classified(self, address: str, error: BaseException) -> ProviderError:
        failure = classify_gmail_error(error)
        if failure.kind is FailureKind.AUTH_REVOKED:
            self.services.forget(address)
        return failure


def _received(labels: list[str] | None) -> bool:
    """Mail that came in (a message to oneself is both SENT and INBOX); labels unknown count as received."""
    if labels is None:
        return True
    return "DRAFT" not in labels and ("SENT" not in labels or "INBOX" in labels)


def _decode_base64url(data: str) -> bytes:
    """Gmail's base64url may come without padding."""
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
