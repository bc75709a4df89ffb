"""The one place an outgoing email becomes MIME, shared by every email provider.

Gmail and the outbox must produce the same message (same Message-ID, threading headers and
`X-Outbound-Execution` marker) because the exactly-once lookup and the reply threading rely
on those headers, whatever provider carried the message.

The message is built with the `compat32` policy and the `email.mime` classes. Every header
set through the modern policies (`email.policy.default`) is parsed into a structured header
object on assignment, and `add_alternative` re-parses the parts it moves: building one small
message that way took 1.3-2.5 ms of the worker's CPU, about a quarter of an email send (each
header ~20-100 us). Here headers are stored as the strings they are (every address is plain
ASCII, `domain.addresses`; a non-ASCII subject is written as RFC 2047 encoded words), and
bodies are 7-bit when they can be and quoted-printable UTF-8 otherwise. Flatten with
`serialise`, which keeps compat32: a modern policy would re-parse every header.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import UTC, datetime
from email import charset as charsets
from email.charset import Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
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

_MAX_LINE = 998  # RFC 5322 2.1.1: longer lines need folding (headers) or a transfer encoding (bodies)
# `mangle_from_` off: compat32 would turn a body line "From the team" into ">From the team".
# Headers fold only past 998: compat32 folds a long unbreakable value (the unsubscribe link)
# right after the colon, which parsers read back with a leading space.


class _Compat32KeepingPlainHeaders(Compat32):
    """compat32 that writes a header needing no folding or encoding (ASCII, one line, at most
    998 characters: every header `build_email` sets but a long one) as it is. compat32 runs
    each header through an `email.header.Header` to fold it, which returns such a value
    unchanged but cost ~20 us a header, a fifth of flattening a message (profile in
    docs/benchmarks.md, 2026-12-06). `tests/test_mime.py` checks the two agree byte for byte."""

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        if isinstance(value, str) and _is_plain(name, value, self.max_line_length):
            return f"{name}: {value}{self.linesep}"
        folded: str = super()._fold(name, value, sanitize)  # type: ignore[misc]  # not in typeshed
        return folded


def _is_plain(name: str, value: str, limit: int | None) -> bool:
    return (
        value.isascii()
        and "\n" not in value
        and "\r" not in value
        and (limit is None or len(name) + 2 + len(value) <= limit)
    )


_POLICY = _Compat32KeepingPlainHeaders(linesep="\n", mangle_from_=False, max_line_length=_MAX_LINE)  # outbox files
_WIRE = _POLICY.clone(linesep="\r\n")  # what an SMTP server or an HTTP API receives
_SEVEN_BIT = Charset("utf-8")
_SEVEN_BIT.body_encoding = None  # type: ignore[assignment]  # None (typeshed: int) means 7bit/8bit as it is
_QUOTED_PRINTABLE = Charset("utf-8")
_QUOTED_PRINTABLE.body_encoding = charsets.QP


def build_email(message: OutgoingMessage, *, date: datetime | None = None) -> Message:
    """The RFC 5322 message for `message`: text and HTML alternatives, threading headers,
    the deterministic Message-ID and every extra header (List-Unsubscribe and the like)."""
    text = message.body or ""
    html_text = message.html if message.html is not None else text_to_html(text)
    mail = MIMEMultipart(
        "alternative",
        _subparts=[_text_part(text, "plain"), _text_part(html_text, "html")],
        policy=_POLICY,
        boundary=_boundary(message.key, text, html_text),
    )
    headers = {
        "From": message.sender_address,
        "To": message.to,
        "Subject": _encoded_words(_one_line(message.subject or "")),
        "Date": format_datetime((date or datetime.now(UTC)).astimezone(UTC)),
        "Message-ID": angle_addr(message.key),
    }
    if message.in_reply_to:
        headers["In-Reply-To"] = angle_addr(message.in_reply_to)
    references = reference_chain(message.references, message.in_reply_to)
    if references:
        headers["References"] = " ".join(references)
    headers[EXECUTION_HEADER] = str(message.execution_id)
    for name, value in message.headers.items():
        if name.lower() in _STRUCTURAL_HEADERS:
            raise ValueError(f"extra header {name!r} would override a header the message already sets")
        headers[name] = value
    structure = [(name, mail[name]) for name in ("MIME-Version", "Content-Type")]
    del mail["MIME-Version"], mail["Content-Type"]
    for name, value in [*headers.items(), *structure]:  # From first, as mail clients show them
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        mail[name] = value
    return mail


def _boundary(key: str, *contents: str) -> str | None:
    """The parts' boundary, derived from the Message-ID: without one the generator draws a
    random boundary and compiles a regular expression to check it against the text (a
    quarter of a millisecond per email, profiled). A boundary found in the text (only a
    text written to collide could hold it) leaves the choice to the generator."""
    boundary = f"=_outbound_{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    return None if any(boundary in content for content in contents) else boundary


def serialise(mail: Message, *, crlf: bool = False) -> bytes:
    """The bytes of a message from `build_email`; `crlf` for the wire, LF for files."""
    return mail.as_bytes(policy=_WIRE if crlf else _POLICY)


def _encoded_words(text: str) -> str:
    """A non-ASCII header as RFC 2047 encoded words (each ≤ 75 characters, as 2047 requires)
    on one line: the policy folds only past 998 characters, and then between the words."""
    return text if text.isascii() else Header(text, "utf-8", maxlinelen=75).encode(linesep="")


def _text_part(content: str, subtype: str) -> MIMEText:
    """A text part ending in a newline, like every line of a text file."""
    content = content if content.endswith("\n") else f"{content}\n"
    plain = content.isascii() and all(len(line) <= _MAX_LINE for line in content.splitlines())
    # MIMEText takes a Charset too (typeshed: str): it names the parameter and the encoding.
    charset = _SEVEN_BIT if plain else _QUOTED_PRINTABLE
    return MIMEText(content, subtype, charset, policy=_POLICY)  # type: ignore[arg-type]


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
