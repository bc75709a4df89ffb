"""Signed, expiring unsubscribe links: the token alone authorises one contact's opt-out.

A token is `1.<contact>.<execution>.<expires>.<mac>`: decimal ids (the execution may be
empty), the expiry in Unix seconds and a url-safe HMAC-SHA256 of everything before it.
It needs no database row, so a link in a sent email keeps working after a restore, and
it carries only internal ids, never an address. The key is purpose-specific
(`SecretBox.signing_key("unsubscribe")`), so no other signature of the deployment can be
replayed as an unsubscribe link. Expiry is part of the signed text: an old link cannot
be stretched, and an expired one is told apart from a forged one so the page can say so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

VERSION = "1"
MAX_TOKEN_LENGTH = 200
_NUMBER = re.compile(r"^(?:0|[1-9][0-9]{0,18})$")  # what `str(int)` writes: no sign, spaces, `_` or padding


@dataclass(frozen=True, slots=True)
class UnsubscribeClaim:
    """What a valid token vouches for."""

    contact_id: int
    execution_id: int | None
    expires_at: datetime


class InvalidUnsubscribeToken(ValueError):
    """A token that is malformed, forged, signed with another key or expired.

    `expired` is only True for an authentic token whose time is up, so the page can offer
    a fresh way out instead of calling the link broken.
    """

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def sign_unsubscribe(key: bytes, *, contact_id: int, execution_id: int | None, expires_at: datetime) -> str:
    """A url-safe token for the `List-Unsubscribe` link of one message to one contact."""
    if not key:
        raise ValueError("an unsubscribe token needs a signing key")
    if contact_id < 1 or (execution_id is not None and execution_id < 1):
        raise ValueError("contact and execution ids are positive")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    execution = "" if execution_id is None else str(execution_id)
    payload = f"{VERSION}.{contact_id}.{execution}.{int(expires_at.timestamp())}"
    return f"{payload}.{_mac(key, payload)}"


def verify_unsubscribe(key: bytes, token: str, now: datetime) -> UnsubscribeClaim:
    """The claim of an authentic, unexpired token; `InvalidUnsubscribeToken` otherwise.

    The signature is checked before anything in the payload is believed, in constant time.
    """
    if not key:
        raise ValueError("an unsubscribe token needs a signing key")
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise InvalidUnsubscribeToken("the unsubscribe link is malformed")
    payload, _, mac = token.rpartition(".")
    if not payload or not hmac.compare_digest(mac.encode(), _mac(key, payload).encode()):
        raise InvalidUnsubscribeToken("the unsubscribe link is not valid")
    parts = payload.split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        raise InvalidUnsubscribeToken("the unsubscribe link is malformed")
    _, contact, execution, expires = parts
    if not _NUMBER.match(contact) or not _NUMBER.match(expires) or (execution and not _NUMBER.match(execution)):
        raise InvalidUnsubscribeToken("the unsubscribe link is malformed")
    try:
        expires_at = datetime.fromtimestamp(int(expires), UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidUnsubscribeToken("the unsubscribe link is malformed") from None
    if now >= expires_at:
        raise InvalidUnsubscribeToken("the unsubscribe link has expired", expired=True)
    return UnsubscribeClaim(int(contact), int(execution) if execution else None, expires_at)


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
