"""The links a message carries back to us: one-click unsubscribe, delivery callbacks, TwiML.

They all point at the API service's public address (`OUTBOUND_PUBLIC_BASE_URL`). The
unsubscribe link is signed with `OUTBOUND_SECRET_KEY` and expires; no email goes out
without one (on the embedded defaults a local key is made, `runtime.local_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.unsubscribe_tokens import sign_unsubscribe
from runtime.secrets import SecretBox, SecretKeyMissing
from runtime.settings import Settings


@dataclass(frozen=True)
class MessageLinks:
    public_base_url: str
    unsubscribe_key: bytes | None
    link_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> MessageLinks:
        key = SecretBox(settings.secret_key).signing_key("unsubscribe") if settings.secret_key else None
        return cls(settings.public_base_url.rstrip("/"), key, settings.unsubscribe_link_days)

    def unsubscribe_url(self, *, contact_id: int, execution_id: int, now: datetime) -> str:
        """The signed one-click link of this message. Every email carries one, so there is
        no email without a key (the worker refuses to start the email queue without it)."""
        if self.unsubscribe_key is None:
            raise SecretKeyMissing("OUTBOUND_SECRET_KEY is not set: an email cannot carry its unsubscribe link")
        token = sign_unsubscribe(
            self.unsubscribe_key,
            contact_id=contact_id,
            execution_id=execution_id,
            expires_at=now + timedelta(days=self.link_days),
        )
        return f"{self.public_base_url}/unsubscribe/{token}"

    @staticmethod
    def unsubscribe_headers(url: str) -> dict[str, str]:
        """RFC 2369 / RFC 8058 headers: mail clients show an "Unsubscribe" button that POSTs."""
        return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    def status_callback(self) -> str:
        return f"{self.public_base_url}/twilio/status"

    def voice_url(self, execution_id: int) -> str:
        return f"{self.public_base_url}/twilio/voice/{execution_id}"
