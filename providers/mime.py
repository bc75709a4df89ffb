"""The one place an outgoing email becomes MIME, shared by every email provider.

Gmail and the outbox must produce the same message (same Message-ID, threading headers and
`X-Outbound-Execution` marker) because the exactly-once lookup and the reply threading rely
on those headers, whatever provider carried the message.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from providers.base import OutgoingMessage

EXECUTION_HEADER = "X-Outbound-Execution"

# Set by `build_email` itself; an extra header with one of these names would contradict them.
_STRUCTURAL_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        EXECUTION_HEADER,
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    )
)
# Applied to escaped text: a URL ends before whitespace or an escaped quote or bracket.
_URL = re.compile(r"https?://(?:(?!&quot;|&#x27;|&lt;|&gt;)[^\s<>\"])+")
_TRAILING_PUNCTUATION = ".,;:!?)]'"
_NEWLINE, _BREAK = "\n", "<br>\n"


def build_email(message: OutgoingMessage, *, date: datetime | None = None) -> EmailMessage:
    """The RFC 5322 message for `message`: text and HTML alternatives, threading headers,
    the deterministic Message-ID and every extra header (List-Unsubscribe and the like)."""
    mail = EmailMessage()
    mail["From"] = message.sender_address
    mail["To"] = message.to
    mail["Subject"] = _one_line(message.subject or "")
    mail["Date"] = format_datetime((date or datetime.now(UTC)).astimezone(UTC))
    mail["Message-ID"] = angle_addr(message.key)
    if message.in_reply_to:
        mail["In-Reply-To"] = angle_addr(message.in_reply_to)
    references = reference_chain(message.references, message.in_reply_to)
    if references:
        mail["References"] = " ".join(references)
    mail[EXECUTION_HEADER] = str(message.execution_id)
    for name, value in message.headers.items():
        if name.lower() in _STRUCTURAL_HEADERS:
            raise ValueError(f"extra header {name!r} would override a header the message already sets")
        mail[name] = value
    text = message.body or ""
    mail.set_content(text)
    mail.add_alternative(message.html if message.html is not None else text_to_html(text), subtype="html")
    return mail


def angle_addr(message_id: str) -> str:
    """A Message-ID in the `<...>` form RFC 5322 requires, whatever form it was stored in."""
    stripped = message_id.strip()
    return stripped if stripped.startswith("<") and stripped.endswith(">") else f"<{stripped.strip('<>')}>"


def reference_chain(references: tuple[str, ...], in_reply_to: str | None) -> list[str]:
    """`References` must end with the parent (RFC 5322 3.6.4), or clients and Gmail thread the
    message under the wrong ancestor; duplicates are dropped, order kept."""
    chain: list[str] = []
    for reference in (*references, *((in_reply_to,) if in_reply_to else ())):
        normalised = angle_addr(reference)
        if normalised in chain:
            chain.remove(normalised)
        chain.append(normalised)
    return chain


def text_to_html(text: str) -> str:
    """An HTML alternative for a plain-text body: escaped, blank lines become paragraphs,
    single newlines line breaks, and bare URLs links (clients render the HTML part)."""
    paragraphs = [part for part in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if part.strip()]
    rendered = "\n".join(f"<p>{_linkify(html.escape(part)).replace(_NEWLINE, _BREAK)}</p>" for part in paragraphs)
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n{rendered}\n</body></html>\n'


def _linkify(escaped: str) -> str:
    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        trimmed = url.rstrip(_TRAILING_PUNCTUATION)
        return f'<a href="{trimmed}">{trimmed}</a>{url[len(trimmed) :]}'

    return _URL.sub(link, escaped)


def _one_line(value: str) -> str:
    """A rendered subject may contain newlines; a header must not (header injection)."""
    return " ".join(value.split())
