"""Mailbox credentials from the database, decrypted only in the worker that needs them.

Workflows and activity payloads carry sender ids, never tokens; the refresh token lives
encrypted in `senders.credentials_encrypted` and exists in clear only inside this object.
"""

from __future__ import annotations

from google.oauth2.credentials import Credentials

from db.engine import SessionFactory
from db.mailboxes import stored_credentials
from providers.base import FailureKind, ProviderError
from providers.gmail_auth import oauth_credentials
from runtime.secrets import SecretBox
from runtime.settings import GmailSettings


class StoredGmailCredentials:
    """A `CredentialSource` reading the mailbox's encrypted OAuth grant from the database."""

    def __init__(self, sessions: SessionFactory, box: SecretBox, settings: GmailSettings) -> None:
        self._sessions = sessions
        self._box = box
        self._settings = settings

    def credentials(self, address: str) -> Credentials:
        with self._sessions() as session:
            token = stored_credentials(session, address)
        if token is None:
            raise ProviderError(
                FailureKind.AUTH_REVOKED, "the mailbox has no stored credentials: connect it with `senders add-gmail`"
            )
        grant = self._box.decrypt(token)
        return oauth_credentials(
            client_id=grant["client_id"],
            client_secret=grant["client_secret"],
            refresh_token=grant["refresh_token"],
            settings=self._settings,
        )


class KeylessCredentials:
    """The source of a worker started without `OUTBOUND_SECRET_KEY`: mailbox work fails
    (and is retried) until the key is configured, and no mailbox is disabled for it."""

    def credentials(self, address: str) -> Credentials:
        raise ProviderError(
            FailureKind.RETRYABLE, "OUTBOUND_SECRET_KEY is not set on this worker: stored mailbox tokens are unreadable"
        )


def authorized_user_grant(info: dict[str, object]) -> dict[str, str]:
    """The parts of an authorized-user JSON (what Google's OAuth tools write) we keep.

    Raises ValueError naming what is missing, never echoing the values."""
    missing = [name for name in ("client_id", "client_secret", "refresh_token") if not info.get(name)]
    if missing:
        raise ValueError(
            f"the credentials file lacks {', '.join(missing)}: it must be an authorized-user JSON "
            '({"type": "authorized_user", "client_id": ..., "client_secret": ..., "refresh_token": ...})'
        )
    return {name: str(info[name]) for name in ("client_id", "client_secret", "refresh_token")}
