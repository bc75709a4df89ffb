"""Secrets at rest: one key from the environment encrypts mailbox tokens and signs links.

Mailbox refresh tokens are stored as Fernet tokens (AES + HMAC) so a copy of the database
alone does not give anyone a mailbox. Purpose-specific signing keys are derived from the
same secret with HMAC so an unsubscribe link can never be replayed as anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr


class SecretKeyMissing(RuntimeError):
    """Raised when an operation needs `OUTBOUND_SECRET_KEY` and it is not set."""


class SecretKeyInvalid(RuntimeError):
    """Raised when stored secrets cannot be decrypted with the configured key."""


def new_secret_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    """Encrypts and decrypts small JSON documents (OAuth credentials) with the deployment key."""

    def __init__(self, secret_key: SecretStr | None) -> None:
        if secret_key is None or not secret_key.get_secret_value():
            raise SecretKeyMissing(
                "OUTBOUND_SECRET_KEY is not set; create one with `outbound secret-key` and keep it safe "
                "(stored mailbox tokens cannot be read without it)"
            )
        raw = secret_key.get_secret_value().encode()
        try:
            self._fernet = Fernet(raw)
        except ValueError:
            raise SecretKeyInvalid(
                "OUTBOUND_SECRET_KEY is not a valid key (32 url-safe base64-encoded bytes); "
                "create one with `outbound secret-key`"
            ) from None
        self._raw = raw

    def encrypt(self, document: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(document, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyInvalid(
                "stored credentials cannot be decrypted: OUTBOUND_SECRET_KEY differs from the key they were saved with"
            ) from None
        if not isinstance(data, dict):
            raise SecretKeyInvalid("stored credentials are not a JSON object")
        return data

    def signing_key(self, purpose: str) -> bytes:
        """A key for one purpose only (e.g. "unsubscribe"), derived from the deployment key."""
        return hmac.new(self._raw, f"outbound:{purpose}".encode(), hashlib.sha256).digest()
