"""Inbound email into the database: stored once, tied to our message and contact, acted on.

One call is one transaction (the caller's): the message row, the contact's stop (R7) and
any suppression commit together, so a crash leaves either all of it or none. The
(channel, provider message id) key makes a re-synced message a no-op and its effects run
only for the call that stored it, so the sync may see a message any number of times.

Rules (the same as the classification's, in database terms):
- reply -> the contact is stopped (`replied`) in every campaign at once;
- unsubscribe -> the address that asked is suppressed and the contact stopped (`unsubscribed`);
- hard bounce -> the contact's address is suppressed and the contact stopped (`bounced`);
- soft bounce -> `contacts.soft_bounces + 1` in SQL; at the threshold, as a hard bounce;
- auto-reply, other, or no contact we know -> stored, nothing else. Our own mail (from any
  of the workspace's email senders) is not stored at all: it is what we sent.

Replies, automatic replies and opt-outs are stored with their intent (`domain.reply_intent`):
a reply's as judged, an automatic reply's `out_of_office` (with the return date read from
it), an opt-out's `unsubscribe_request`. Only a reply tells `contact.replied` its intent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from db.contacts_repo import add_suppression, find_contact_by_email, stop_contact
from db.dialect import dialect_insert
from db.models import Contact, InboundMessage, Sender, StepExecution
from domain.inbound_classify import InboundClassification, InboundKind, classify_email
from domain.reply_intent import IntentVerdict, automatic_reply_intent, opt_out_intent
from schemas.enums import Channel, SkipReason

CHANNEL = Channel.EMAIL.value
# The Message-ID the send activity gives every email (activities/sending.message_key):
# it names the execution, so the usual lookup is by primary key, not a scan of message_key.
_OUR_KEY = re.compile(r"^<?outbound\.\d+\.(\d+)@[^<>\s]+>?$")
_TABLE = cast(Table, InboundMessage.__table__)


@dataclass(frozen=True)
class IngestResult:
    """What one message did. `stored` is False for a message seen before (nothing else
    happened this time) and for our own mail."""

    stored: bool
    kind: InboundKind
    contact_id: int | None = None
    execution_id: int | None = None
    stopped: bool = False
    suppressed: str | None = None


@dataclass(frozen=True)
class _Mailbox:
    id: int
    workspace_id: int
    address: str


def ingest_email(
    session: Session,
    *,
    mailbox_sender_id: int,
    provider_message_id: str,
    thread_id: str | None,
    received_at: datetime,
    raw: bytes,
    now: datetime,
    soft_bounce_threshold: int,
    classified: InboundClassification | None = None,
    intent: IntentVerdict | None = None,
) -> IngestResult:
    """Store, tie and act on one message of the mailbox `mailbox_sender_id` (a Sender row).
    `classified`: `raw` already classified by the caller; `intent`: what a reply (or an
    automatic reply) means, judged before the transaction (a model call is slow).

    Never raises for odd mail: what cannot be read is stored as OTHER."""
    seen = _already_stored(session, provider_message_id)
    if seen is not None:
        return seen
    found = classified or classify_email(raw)
    mailbox = _mailbox(session, mailbox_sender_id)
    if found.from_address and _is_ours(session, mailbox, found.from_address):
        return IngestResult(stored=False, kind=found.kind)
    execution_id, contact_id = _answered_execution(session, found, thread_id, mailbox.id)
    if contact_id is None:
        contact_id = _contact_by_address(session, found, mailbox.workspace_id)
    values = _row(found, mailbox, provider_message_id, thread_id, received_at, now, contact_id, execution_id)
    intent = message_intent(found, intent, received_at)
    if intent is not None:
        values |= intent_columns(intent)
    statement = dialect_insert(session, _TABLE).values(**values)
    inserted = session.execute(
        statement.on_conflict_do_nothing(index_elements=["channel", "provider_message_id"]).returning(_TABLE.c.id)
    ).scalar_one_or_none()
    if inserted is None:  # a concurrent sync stored it first; its call acts on it
        return IngestResult(stored=False, kind=found.kind, contact_id=contact_id, execution_id=execution_id)
    if contact_id is None:
        return IngestResult(stored=True, kind=found.kind, execution_id=execution_id)
    stopped, suppressed = _act(
        session, found, contact_id, mailbox.workspace_id, now, soft_bounce_threshold, answered=execution_id,
        intent=intent,
    )  # fmt: skip
    return IngestResult(True, found.kind, contact_id, execution_id, stopped, suppressed)


def message_intent(
    found: InboundClassification, judged: IntentVerdict | None, received_at: datetime
) -> IntentVerdict | None:
    """What the message means for the sales team, by its kind: a reply's is the judge's (none
    without one); an automatic reply's and an opt-out's follow from the kind itself, so they
    have one even when nothing judged them. Bounces and other mail have none."""
    if found.kind is InboundKind.REPLY:
        return judged
    if found.kind is InboundKind.AUTO_REPLY:
        return automatic_reply_intent(judged, found.text or "", received_at.date())
    if found.kind is InboundKind.UNSUBSCRIBE:
        return opt_out_intent()
    return None


def intent_columns(intent: IntentVerdict) -> dict[str, Any]:
    details = intent.model_dump(mode="json", include={"referral", "return_date"}, exclude_none=True)
    return {"intent": intent.intent.value, "intent_details": details or None, "intent_source": intent.source[:100]}


def is_stored(session: Session, provider_message_id: str) -> bool:
    """Already ingested (a full resync meets old mail again): no reason to judge it twice."""
    return _already_stored(session, provider_message_id) is not None


def _already_stored(session: Session, provider_message_id: str) -> IngestResult | None:
    """A re-synced message, answered from its row without classifying it again."""
    row = session.execute(
        select(InboundMessage.classification, InboundMessage.contact_id, InboundMessage.execution_id).where(
            InboundMessage.channel == CHANNEL, InboundMessage.provider_message_id == provider_message_id
        )
    ).first()
    if row is None:
        return None
    try:
        kind = InboundKind(row[0])
    except ValueError:  # stored by a later version that knows more kinds
        kind = InboundKind.OTHER
    return IngestResult(stored=False, kind=kind, contact_id=row[1], execution_id=row[2])


def _mailbox(session: Session, sender_id: int) -> _Mailbox:
    row = session.execute(
        select(Sender.id, Sender.workspace_id, Sender.address).where(Sender.id == sender_id)
    ).one_or_none()
    if row is None:
        raise LookupError(f"mailbox sender {sender_id} does not exist")
    return _Mailbox(row[0], row[1], row[2].lower())


def _is_ours(session: Session, mailbox: _Mailbox, address: str) -> bool:
    """From this mailbox or another of the workspace's (warm-up, a colleague's test send)."""
    if address == mailbox.address:
        return True
    return (
        session.scalar(
            select(Sender.id)
            .where(Sender.workspace_id == mailbox.workspace_id, Sender.channel == CHANNEL, Sender.address == address)
            .limit(1)
        )
        is not None
    )


def _answered_execution(
    session: Session, found: InboundClassification, thread_id: str | None, mailbox_id: int
) -> tuple[int | None, int | None]:
    """The execution (and its contact) this message answers or bounces: by the Message-IDs it
    references (the parent first), else by the mailbox's Gmail thread."""
    wanted = _key_variants(found.referenced_ids)
    if wanted:
        by_key: dict[str, tuple[int, int]] = {}
        ids = [int(m.group(1)) for key in wanted if (m := _OUR_KEY.match(key))]
        if ids:
            rows = session.execute(
                select(StepExecution.message_key, StepExecution.id, StepExecution.contact_id).where(
                    StepExecution.id.in_(ids)
                )
            )
            by_key.update({key: (id_, contact) for key, id_, contact in rows if key in wanted})
        if not by_key:  # a Message-ID the provider chose (kept as message_key when it differs)
            rows = session.execute(
                select(StepExecution.message_key, StepExecution.id, StepExecution.contact_id).where(
                    StepExecution.message_key.in_(list(wanted))
                )
            )
            by_key.update({key: (id_, contact) for key, id_, contact in rows if key is not None})
        for key in wanted:
            if key in by_key:
                return by_key[key]
    if thread_id:
        row = session.execute(
            select(StepExecution.id, StepExecution.contact_id)
            .where(
                StepExecution.sender_id == mailbox_id,
                StepExecution.provider_thread_id == thread_id,
                StepExecution.sent_at.is_not(None),
            )
            .order_by(StepExecution.sent_at.desc(), StepExecution.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            return row[0], row[1]
    return None, None


def _key_variants(ids: Iterable[str]) -> dict[str, None]:
    """Each referenced id as sent (`<...>`) and bare, in preference order: message keys are
    stored with brackets, but a provider may have handed one back without."""
    variants: dict[str, None] = {}
    for value in ids:
        bare = value.strip().strip("<>")
        if bare:
            variants.setdefault(f"<{bare}>")
            variants.setdefault(bare)
    return variants


def _contact_by_address(session: Session, found: InboundClassification, workspace_id: int) -> int | None:
    """Mail that references nothing of ours: the contact it is about, by address (the failed
    recipient of a bounce, the sender of anything else)."""
    address = found.bounced_recipient if found.kind.is_bounce else found.from_address
    if not address:
        return None
    contact = find_contact_by_email(session, address, workspace_id=workspace_id)
    return contact.id if contact is not None else None


def _row(
    found: InboundClassification,
    mailbox: _Mailbox,
    provider_message_id: str,
    thread_id: str | None,
    received_at: datetime,
    now: datetime,
    contact_id: int | None,
    execution_id: int | None,
) -> dict[str, Any]:
    headers = dict(found.headers)
    if found.bounce_status:
        headers["X-Outbound-Bounce-Status"] = found.bounce_status
    if found.diagnostic:
        headers["X-Outbound-Bounce-Diagnostic"] = found.diagnostic
    if found.original_message_id:
        headers["X-Outbound-Original-Message-ID"] = found.original_message_id
    return {
        "workspace_id": mailbox.workspace_id,
        "channel": CHANNEL,
        "sender_id": mailbox.id,
        "provider_message_id": provider_message_id[:255],
        "thread_id": thread_id[:255] if thread_id else None,
        "rfc_message_id": found.rfc_message_id,
        "in_reply_to": found.in_reply_to,
        "from_address": found.from_address,
        "to_address": found.to_address,
        "subject": found.subject,
        "text_body": found.text,
        "html_body": found.html,
        "headers": headers,
        "classification": found.kind.value,
        "bounced_recipient": found.bounced_recipient,
        "contact_id": contact_id,
        "execution_id": execution_id,
        "received_at": received_at,
        "created_at": now,
    }


def _act(
    session: Session,
    found: InboundClassification,
    contact_id: int,
    workspace_id: int,
    now: datetime,
    soft_bounce_threshold: int,
    *,
    answered: int | None = None,
    intent: IntentVerdict | None = None,
) -> tuple[bool, str | None]:
    """The effect of a stored message on its contact: (stopped, suppressed address)."""
    kind = found.kind
    if kind is InboundKind.REPLY:
        stop_contact(session, contact_id, SkipReason.REPLIED, now, source="gmail", message_id=answered, intent=intent)
        return True, None
    if kind is InboundKind.UNSUBSCRIBE:
        # The person who asked, who may be a colleague answering in the contact's thread.
        address = found.from_address or _contact_email(session, contact_id)
        suppressed = _suppress(session, address, "asked to be removed (email reply)", now, workspace_id)
        stop_contact(session, contact_id, SkipReason.UNSUBSCRIBED, now, source="gmail", message_id=answered)
        return True, suppressed
    if kind is InboundKind.BOUNCE_HARD:
        # The address we mail, which a forwarding server may have rewritten in the report.
        address = _contact_email(session, contact_id) or found.bounced_recipient
        reason = f"hard bounce {found.bounce_status}" if found.bounce_status else "hard bounce"
        suppressed = _suppress(session, address, reason, now, workspace_id)
        stop_contact(session, contact_id, SkipReason.BOUNCED, now, source="gmail", message_id=answered)
        return True, suppressed
    if kind is InboundKind.BOUNCE_SOFT:
        count = session.execute(
            update(Contact)
            .where(Contact.id == contact_id)
            .values(soft_bounces=Contact.soft_bounces + 1, updated_at=now)
            .returning(Contact.soft_bounces)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        if count < soft_bounce_threshold:
            return False, None
        address = _contact_email(session, contact_id) or found.bounced_recipient
        reason = f"{count} soft bounces" + (f", last {found.bounce_status}" if found.bounce_status else "")
        suppressed = _suppress(session, address, reason, now, workspace_id)
        stop_contact(session, contact_id, SkipReason.BOUNCED, now, source="gmail", message_id=answered)
        return True, suppressed
    return False, None


def _contact_email(session: Session, contact_id: int) -> str | None:
    return session.scalar(select(Contact.email).where(Contact.id == contact_id))


def _suppress(session: Session, address: str | None, reason: str, now: datetime, workspace_id: int) -> str | None:
    if not address:
        return None
    try:
        return add_suppression(session, address, reason, now, workspace_id=workspace_id).value
    except ValueError:
        return None  # not an address anyone could send to, so there is nothing to suppress
