"""The links a message carries back to us: one-click unsubscribe, delivery callbacks, TwiML.

They all point at the API service's public address (`OUTBOUND_PUBLIC_BASE_URL`). The
unsubscribe link is signed and expires; without `OUTBOUND_SECRET_KEY` (the offline demo)
emails go out without `List-Unsubscribe` rather than with a link that cannot be verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.unsubscribe_tokens import sign_unsubscribe
from runtime.secrets import SecretBox
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

    def unsubscribe_headers(self, *, contact_id: int, execution_id: int, now: datetime) -> dict[str, str]:
        """RFC 2369 / RFC 8058 headers: mail clients show an "Unsubscribe" button that POSTs."""
        if self.unsubscribe_key is None:
            return {}
        token = sign_unsubscribe(
            self.unsubscribe_key,
            contact_id=contact_id,
            execution_id=execution_id,
            expires_at=now + timedelta(days=self.link_days),
        )
        return {
            "List-Unsubscribe": f"<{self.public_base_url}/unsubscribe/{token}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }

    def status_callback(self) -> str:
        return f"{self.public_base_url}/twilio/status"

    def voice_url(self, execution_id: int) -> str:
        return f"{self.public_base_url}/twilio/voice/{execution_id}"
