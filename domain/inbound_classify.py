"""What came back to a mailbox: a reply, an auto-reply, a bounce, an opt-out, or other mail.

Pure: raw RFC 5322 bytes in, a classification out, never an exception. The rules are the
ones mature senders converge on, because every wrong call costs something real: a missed
bounce keeps mailing a dead address (and hurts the mailbox's reputation), an auto-reply
taken for a reply stops a sequence that should go on, an opt-out taken for a reply keeps
the address mailable by the next campaign.

- Delivery-status reports (RFC 3464) are read structurally; bounces that are not RFC 3464
  (qmail, old Exim, some webmail providers) are recognised by a null or daemon sender and
  their wording, and the recipient is dug out of the text or the returned message.
- Automatic replies by RFC 3834 `Auto-Submitted` and the de-facto headers and subjects of
  the big mail systems. Outlook's `X-Auto-Response-Suppress` is on ordinary mail too, so it
  only counts next to another sign.
- An opt-out only when the first lines of the *new* text ask for it, so a quoted footer or
  a long email that mentions "unsubscribe" in passing stays a reply.
- Mailing-list mail that answers nothing of ours (`List-Id` / `List-Unsubscribe` /
  `Precedence: list|bulk` and no `In-Reply-To`) is OTHER: a newsletter the mailbox owner
  subscribed to is neither a reply nor a request to us.
"""

from __future__ import annotations

import html as html_lib
import re
from base64 import b64decode
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses
from enum import StrEnum
from typing import cast


class InboundKind(StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE_HARD = "bounce_hard"
    BOUNCE_SOFT = "bounce_soft"
    UNSUBSCRIBE = "unsubscribe"
    OTHER = "other"

    @property
    def is_bounce(self) -> bool:
        return self in (InboundKind.BOUNCE_HARD, InboundKind.BOUNCE_SOFT)


# Stored with the message (JSON): enough to audit a classification, bounded in size.
KEPT_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Return-Path",
    "Auto-Submitted",
    "Precedence",
    "X-Autoreply",
    "X-Autorespond",
    "X-Auto-Response-Suppress",
    "X-Failed-Recipients",
    "List-Id",
    "List-Unsubscribe",
    "Content-Type",
)
MAX_HEADER = 998  # RFC 5322 line limit; longer values are cut
MAX_BODY = 200_000
OPT_OUT_LINES = 3  # an opt-out must be asked in the first lines of the new text...
OPT_OUT_CHARS = 300  # ...and near its start

_DAEMON_LOCAL = re.compile(
    r"^(mailer-?daemon|mail-?daemon|postmaster|mail\.?delivery|bounces?|no-?reply-?dsn)([+=._-].*)?$", re.IGNORECASE
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliver|undelivered mail|delivery status notification|returned mail|failure notice|delivery fail"
    r"|mail delivery failed|mail delivery subsystem|could not be delivered|non.?delivery|message not delivered"
    r"|delivery has failed|delayed mail|warning: could not send|mail system error|unzustellbar|non remis)",
    re.IGNORECASE,
)
_COPY_MARKER = re.compile(
    r"^\s*[-=]*\s*(below this line is a copy|this is a copy of the message|original message headers"
    r"|(a copy of )?the original message|original message follows|returned message|undelivered message)",
    re.IGNORECASE | re.MULTILINE,
)
_ENHANCED_CODE = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# A bare SMTP reply code counts only where bounces quote one (at a line start, after "said:",
# "error", "returned '"...), so "call me on 415 555 0101" in an auto-reply is no evidence.
_BASIC_CODE = re.compile(
    r"(?:^\s*|said:\s*|error:?\s+|returned\s+'?|reply:\s*|code:?\s+)(?P<code>[45][0-5]\d)(?=[\s:-])",
    re.IGNORECASE | re.MULTILINE,
)
_HARD_WORDING = re.compile(
    r"does not exist|doesn't exist|user unknown|unknown user|no such (user|recipient|mailbox)|address rejected"
    r"|recipient not found|couldn't be found|could not be found|invalid recipient|mailbox unavailable"
    r"|account (is |has been )?disabled|doesn't have an? .{0,80}account|no mailbox here|address not found",
    re.IGNORECASE,
)
_PERMANENT_WORDING = re.compile(r"permanent (error|failure)|permanently|will not be retried", re.IGNORECASE)
_FULL_WORDING = re.compile(
    r"mailbox (is )?full|over quota|quota exceeded|exceeded (the |its )?(storage|quota)|insufficient (system )?storage",
    re.IGNORECASE,
)
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-AutoReply-From", "X-Mail-Autoreply")
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[- ]?(reply|response)|auto:|autoreply|autosvar|out of (the )?office"
    r"|ooo[\s:]|on vacation|vacation (reply|response|notice)|abwesenheitsnotiz|abwesend|automatische antwort"
    r"|réponse automatique|absence du bureau|respuesta automática|fuera de la oficina|risposta automatica"
    r"|fuori sede|resposta automática|automatisch antwoord|afwezig|automaattinen vastaus|frånvaro"
    r"|automatisk svar|odpowiedź automatyczna)",
    re.IGNORECASE,
)
_OPT_OUT = re.compile(
    r"\b(unsubscribe|remove me|remove my (e-?mail|address|name)|take me off|opt (me )?out|opt-out"
    r"|stop (e-?mailing|contacting|sending|messaging|writing)|(do not|don't|please don't) (e-?mail|contact|write)"
    r"|no (more|further) (e-?mails|emails|messages)|abmelden|austragen|désinscri|désabonner|darme de baja)",
    re.IGNORECASE,
)
_OPT_OUT_SUBJECT = re.compile(r"^\s*((re|aw|sv|fw|fwd):\s*)*(unsubscribe|remove( me)?|stop|opt[- ]?out)\s*$", re.I)
_QUOTE_INTRO = re.compile(
    r"^(on\b.{3,300}\bwrote:|am\b.{3,300}\bschrieb\b.{0,120}:|le\b.{3,300}\ba écrit ?:|el\b.{3,300}\bescribió:"
    r"|-{2,} ?(original message|ursprüngliche nachricht|message d'origine|forwarded message) ?-{2,}|_{8,})\s*$",
    re.IGNORECASE,
)
_OUTLOOK_HEADER = re.compile(r"^\*?(from|von|de|van|da):\*?\s", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\*?(sent|date|gesendet|datum|envoyé|enviado|verzonden|inviato|to|an|à):", re.IGNORECASE)
_HTML_QUOTE = re.compile(
    r'<blockquote|<div[^>]+class="?(gmail_quote|gmail_attr|yahoo_quoted|moz-cite-prefix)|id="?(divRplyFwdMsg|appendonsend)',
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


@dataclass(frozen=True)
class InboundClassification:
    """One inbound email, read: what it is, who it is about and which message it points to.

    Every string is JSON- and database-safe (no NUL, no lone surrogates) and bounded."""

    kind: InboundKind
    from_address: str | None = None
    to_address: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    rfc_message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    bounced_recipient: str | None = None
    bounce_status: str | None = None
    diagnostic: str | None = None
    original_message_id: str | None = None  # a bounce: the Message-ID of the message that bounced

    @property
    def referenced_ids(self) -> tuple[str, ...]:
        """Every Message-ID this message points back to, the most direct first: the parent,
        the bounced original, then the thread from newest to oldest."""
        ids = [self.in_reply_to, self.original_message_id, *reversed(self.references)]
        return tuple(dict.fromkeys(i for i in ids if i))

    @property
    def reply_text(self) -> str:
        """The new text of a reply, quotes removed (from the HTML when there is no text part)."""
        return strip_quoted(self.text) if self.text else strip_quoted(html_to_text(self.html or "", quotes=False))


def classify_email(raw: bytes) -> InboundClassification:
    """Classify one message. Mail too broken to read is OTHER, with whatever could be read."""
    try:
        mail = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(mail, EmailMessage)
        envelope = _envelope(mail)
    except Exception:  # malformed mail is data, not an error
        return InboundClassification(kind=InboundKind.OTHER)
    try:
        return _classify(mail, envelope)
    except Exception:
        return InboundClassification(kind=InboundKind.OTHER, **envelope)  # type: ignore[arg-type]


def strip_quoted(text: str) -> str:
    """The new part of a reply: everything above the first quoted line (`>`) or quote
    introduction ("On ... wrote:", possibly wrapped over two lines, "-----Original
    Message-----", Outlook's "From: ... / Sent: ..." block and their translations)."""
    lines = text.replace("\r\n", "\n").splitlines()
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        wrapped = not _QUOTE_INTRO.match(following) and _QUOTE_INTRO.match(f"{stripped} {following}")
        if stripped.startswith(">") or _QUOTE_INTRO.match(stripped) or wrapped:
            break
        outlook_block = any(_OUTLOOK_NEXT.match(n.strip()) for n in lines[index + 1 : index + 4])
        if _OUTLOOK_HEADER.match(stripped) and outlook_block:
            break
        kept.append(line)
    return "\n".join(kept).strip()


def html_to_text(markup: str, *, quotes: bool = True) -> str:
    """Readable text of an HTML body (for rules that read words); `quotes=False` drops the
    quoted part that mail clients mark up (Gmail, Outlook, Yahoo, Thunderbird)."""
    if not quotes and (found := _HTML_QUOTE.search(markup)):
        markup = markup[: found.start()]
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h\d)>", "\n", markup)
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", markup))
    return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip()


def _classify(mail: EmailMessage, envelope: dict[str, object]) -> InboundClassification:
    def verdict(kind: InboundKind, **extra: object) -> InboundClassification:
        return InboundClassification(kind=kind, **envelope, **extra)  # type: ignore[arg-type]

    report_type = mail.get_param("report-type", header="content-type")
    if mail.get_content_type() == "multipart/report" and str(report_type).lower() == "disposition-notification":
        return verdict(InboundKind.OTHER)  # a read receipt
    bounce = _delivery_status_bounce(mail)
    if bounce is None:
        bounce = _text_bounce(mail, envelope)
    if bounce is _NOT_A_FAILURE:
        return verdict(InboundKind.OTHER)  # a delivery *success* report (delivered / relayed / expanded)
    if bounce is not None:
        return verdict(**bounce)  # type: ignore[arg-type]
    if not envelope["from_address"]:
        return verdict(InboundKind.OTHER)  # nobody to have replied
    subject = str(envelope["subject"] or "")
    if _is_auto_reply(mail, subject):
        return verdict(InboundKind.AUTO_REPLY)
    if _is_list_mail(mail) and not envelope["in_reply_to"]:
        return verdict(InboundKind.OTHER)
    text, markup = envelope["text"], envelope["html"]
    fresh = strip_quoted(str(text)) if text else strip_quoted(html_to_text(str(markup or ""), quotes=False))
    if _asks_to_opt_out(fresh, subject):
        return verdict(InboundKind.UNSUBSCRIBE)
    return verdict(InboundKind.REPLY)


def _envelope(mail: EmailMessage) -> dict[str, object]:
    """The fields every classification carries, read once."""
    text, markup = _bodies(mail)
    return {
        "from_address": _address(_header(mail, "From")),
        "to_address": _address(_header(mail, "To")),
        "subject": _header(mail, "Subject"),
        "text": text,
        "html": markup,
        "rfc_message_id": _message_id(_header(mail, "Message-ID")),
        "in_reply_to": _message_id(_header(mail, "In-Reply-To")),
        "references": tuple(_message_ids(_header(mail, "References")))[-50:],
        "headers": {name: value[:MAX_HEADER] for name in KEPT_HEADERS if (value := _header(mail, name))},
    }


# --- bounces -----------------------------------------------------------------------------

_NOT_A_FAILURE: dict[str, object] = {}


def _delivery_status_bounce(mail: EmailMessage) -> dict[str, object] | None:
    """RFC 3464: the per-recipient block that failed or was delayed decides."""
    part = next((p for p in _parts(mail) if p.get_content_type() == "message/delivery-status"), None)
    if part is None:
        return None
    blocks = _status_blocks(part)
    recipients = [b for b in blocks if "action" in b or "final-recipient" in b]
    if not recipients:
        return None
    chosen = next((b for b in recipients if b.get("action", "").split(" ")[0].lower() in ("failed", "delayed")), None)
    if chosen is None:
        return _NOT_A_FAILURE
    action = chosen.get("action", "").split(" ")[0].lower()
    diagnostic = _clean(" ".join(chosen.get("diagnostic-code", "").split()))[:500] or None
    status = _status_code(chosen.get("status", "")) or _status_code(diagnostic or "")
    # The address as we sent it; Final-Recipient may be a forwarding target's.
    recipient = _dsn_address(chosen.get("original-recipient")) or _dsn_address(chosen.get("final-recipient"))
    original = _original_headers(mail)
    per_message = blocks[0] if blocks and blocks[0] is not chosen else {}
    original_id = _message_id(_header(original, "Message-ID")) if original is not None else None
    hard = action == "failed" and _is_hard(status, diagnostic or "")
    return {
        "kind": InboundKind.BOUNCE_HARD if hard else InboundKind.BOUNCE_SOFT,
        "bounced_recipient": recipient or _recipient_from_original(original),
        "bounce_status": status,
        "diagnostic": diagnostic,
        "original_message_id": original_id or _message_id(per_message.get("x-original-message-id")),
    }


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a delivery-status part, field names lower-case. Python parses an
    unencoded part into blocks; a base64 one (some Exchange servers) is decoded and split here."""
    payload = part.get_payload()
    blocks = [{k.lower(): str(v) for k, v in b.items()} for b in payload if isinstance(b, Message)]
    if any("action" in b for b in blocks):
        return blocks
    source = "\n".join(str(b.get_payload()) for b in payload if isinstance(b, Message))
    if isinstance(payload, str):
        source = payload
    if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
        source = b64decode("".join(source.split()) + "==").decode("utf-8", "replace")
    return [
        {k.lower(): " ".join(str(v).split()) for k, v in HeaderParser().parsestr(chunk.strip() + "\n").items()}
        for chunk in re.split(r"\n\s*\n", source.replace("\r\n", "\n"))
        if chunk.strip()
    ]


def _text_bounce(mail: EmailMessage, envelope: dict[str, object]) -> dict[str, object] | None:
    """A bounce that is not RFC 3464: from a daemon or a null sender, saying so in words."""
    sender = str(envelope["from_address"] or "")
    subject = str(envelope["subject"] or "")
    null_sender = (_header(mail, "Return-Path") or "").strip() == "<>"
    failed_header = _address(_header(mail, "X-Failed-Recipients"))
    from_daemon = bool(_DAEMON_LOCAL.match(sender.split("@")[0]))
    full_text = str(envelope["text"] or "") or html_to_text(str(envelope["html"] or ""))
    marker = _COPY_MARKER.search(full_text)
    report = full_text[: marker.start()] if marker else full_text
    evidence = bool(
        _ENHANCED_CODE.search(report)
        or _BASIC_CODE.search(report)
        or _HARD_WORDING.search(report)
        or _FULL_WORDING.search(report)
    )
    bounce_subject = bool(_BOUNCE_SUBJECT.match(subject))
    # A null sender alone is not enough: RFC 3834 asks auto-replies to use one too.
    reported = bool(failed_header) or (from_daemon and (evidence or bounce_subject)) or (null_sender and bounce_subject)
    # A relay that rewrites the sender still says "Undeliverable" with a status code; a
    # person replying to us does not (they would have In-Reply-To).
    relayed = bounce_subject and evidence and not envelope["in_reply_to"]
    if not (reported or relayed):
        return None
    original = _original_headers(mail)
    if original is None and marker is not None:
        original = _headers_in_text(full_text[marker.end() :])
    ignored = {sender, str(envelope["to_address"] or "")}
    recipient = failed_header or _recipient_in_report(report, ignored) or _recipient_from_original(original)
    status, diagnostic = _text_status(report)
    hard = _is_hard(status, report)
    return {
        "kind": InboundKind.BOUNCE_HARD if hard else InboundKind.BOUNCE_SOFT,
        "bounced_recipient": recipient,
        "bounce_status": status,
        "diagnostic": diagnostic,
        "original_message_id": _message_id(_header(original, "Message-ID")) if original is not None else None,
    }


def _text_status(report: str) -> tuple[str | None, str | None]:
    """The status code a human-readable bounce quotes (enhanced `5.1.1` preferred over a bare
    `550`), and the line that quotes it."""
    if enhanced := _ENHANCED_CODE.search(report):
        code, start = enhanced.group(0), enhanced.start()
    elif basic := _BASIC_CODE.search(report):
        code, start = basic.group("code"), basic.start("code")
    else:
        return None, None
    line = report[report.rfind("\n", 0, start) + 1 :].split("\n", 1)[0]
    return code, _clean(" ".join(line.split()))[:500]


def _is_hard(status: str | None, text: str) -> bool:
    """Permanent failures of the address itself are hard. A full or over-quota mailbox
    (5.2.2, 5.2.3 size, 5.3.4) may recover and a policy block (5.7.x: spam, reputation) is
    about the message or the sender, not the address: those count as soft, so repeated
    ones still suppress (at the threshold) without one bad day killing a good address."""
    if _FULL_WORDING.search(text):
        return False
    if status is None:
        return bool(_HARD_WORDING.search(text) or _PERMANENT_WORDING.search(text))
    if status.startswith("4") or status in ("552", "5.2.2", "5.2.3", "5.3.4"):
        return False
    if status.startswith("5.7."):
        return bool(_HARD_WORDING.search(text))
    return True


def _recipient_in_report(report: str, ignored: set[str]) -> str | None:
    """The failed address a human-readable bounce names: the first address that is not the
    sender or the mailbox and not a daemon's."""
    for found in cast(list[str], _EMAIL.findall(report)):
        address = found.lower().strip(".'")
        if address not in ignored and not _DAEMON_LOCAL.match(address.split("@")[0]):
            return address
    return None


def _recipient_from_original(original: Message | None) -> str | None:
    return _address(_header(original, "To")) if original is not None else None


def _original_headers(mail: EmailMessage) -> Message | None:
    """The returned message's headers, from a `text/rfc822-headers` or `message/rfc822` part."""
    for part in _parts(mail):
        kind = part.get_content_type()
        if kind in ("text/rfc822-headers", "text/rfc822-header"):
            payload = part.get_payload(decode=True)
            source = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(part.get_payload())
            return HeaderParser().parsestr(source.lstrip())
        if kind in ("message/rfc822", "message/global", "message/global-headers"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
    return None


def _headers_in_text(rest: str) -> Message | None:
    """The headers of a message copied into a bounce's text after a "copy of the message" line."""
    start = re.search(r"^[A-Za-z][A-Za-z0-9-]*:", rest, re.MULTILINE)
    if start is None:
        return None
    headers = HeaderParser().parsestr(rest[start.start() :])
    return headers if headers.keys() else None


def _status_code(value: str) -> str | None:
    found = _ENHANCED_CODE.search(value)
    return found.group(0) if found else None


def _dsn_address(value: object) -> str | None:
    """`rfc822; someone@example.com` -> someone@example.com (other address types: None)."""
    if not value or ";" not in str(value):
        return _address(str(value)) if value else None
    kind, address = str(value).split(";", 1)
    return _address(address) if kind.strip().lower() in ("rfc822", "utf-8") else None


# --- automatic replies, lists and opt-outs ----------------------------------------------


def _is_auto_reply(mail: EmailMessage, subject: str) -> bool:
    auto_submitted = (_header(mail, "Auto-Submitted") or "").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if any(_header(mail, name) for name in _AUTO_HEADERS):
        return True
    if (_header(mail, "X-Autogenerated") or "").strip().lower() == "reply":
        return True
    precedence = (_header(mail, "Precedence") or _header(mail, "X-Precedence") or "").strip().lower()
    if precedence == "auto_reply" or _AUTO_SUBJECT.match(subject):
        return True
    # Outlook sets X-Auto-Response-Suppress on ordinary mail too; bulk or junk precedence
    # without list headers is an autoresponder (ticket systems, role accounts).
    bulk = precedence in ("bulk", "junk")
    return bulk and (bool(_header(mail, "X-Auto-Response-Suppress")) or not _is_list_mail(mail))


def _is_list_mail(mail: EmailMessage) -> bool:
    precedence = (_header(mail, "Precedence") or "").strip().lower()
    return bool(_header(mail, "List-Id") or _header(mail, "List-Unsubscribe")) or precedence == "list"


def _asks_to_opt_out(fresh: str, subject: str) -> bool:
    if _OPT_OUT_SUBJECT.match(subject):
        return True
    first_lines = "\n".join([line for line in fresh.splitlines() if line.strip()][:OPT_OUT_LINES])
    return bool(_OPT_OUT.search(first_lines[:OPT_OUT_CHARS]))


# --- parsing helpers ----------------------------------------------------------------------


def _parts(mail: Message) -> Iterator[Message]:
    """The message's parts, depth first, without descending into attached messages (whose
    own bodies and reports are not this message's) or delivery-status field blocks."""
    yield mail
    if mail.get_content_maintype() == "multipart" and isinstance(mail.get_payload(), list):
        for part in mail.get_payload():
            if isinstance(part, Message):
                yield from _parts(part)


def _bodies(mail: EmailMessage) -> tuple[str | None, str | None]:
    text = markup = None
    for part in _parts(mail):
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html") or part.get_content_disposition() == "attachment":
            continue
        content = _decoded(part)
        if kind == "text/plain" and text is None:
            text = content
        elif kind == "text/html" and markup is None:
            markup = content
    return text, markup


def _decoded(part: Message) -> str:
    try:
        content = str(part.get_content())  # type: ignore[attr-defined]
    except (LookupError, ValueError, AttributeError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return _clean(content)[:MAX_BODY]


def _header(mail: Message, name: str) -> str | None:
    try:
        value = mail.get(name)
        return _clean(" ".join(str(value).split())) if value is not None else None
    except Exception:  # a header the parser cannot fold or decode
        return None


def _clean(value: str) -> str:
    """Safe for JSON and both databases: no NUL (PostgreSQL refuses it) and no lone
    surrogates (left by undecodable bytes; UTF-8 encoders refuse them)."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _address(value: str | None) -> str | None:
    if not value:
        return None
    try:
        addresses = [address for _, address in getaddresses([value]) if "@" in address]
    except Exception:
        addresses = []
    found = addresses[0] if addresses else next(iter(_EMAIL.findall(value)), "")
    return found.strip().lower()[:320] or None


def _message_id(value: str | None) -> str | None:
    ids = _message_ids(value)
    return ids[0] if ids else None


def _message_ids(value: str | None) -> list[str]:
    return [found[:MAX_HEADER] for found in _MESSAGE_ID.findall(value)] if value else []
