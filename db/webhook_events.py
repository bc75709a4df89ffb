"""What provider webhooks and unsubscribe links change in the database (DESIGN R7).

Each function is one transaction's worth of work on the caller's session and is
idempotent, because providers redeliver webhooks and people click links twice: a
repeated call finds its effect already there and changes nothing. Stops go through
`stop_contact`, so an opt-out or a reply takes effect in every campaign at once and
the send gate refuses anything later; no workflow needs a signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from db.contacts_repo import add_suppression, stop_contact
from db.dialect import dialect_insert
from db.engine import changed_rows
from db.events import record_event, record_message_event
from db.inbound import intent_columns
from db.models import DEFAULT_WORKSPACE_ID, Contact, InboundMessage, Sender, Step, StepExecution, Suppression
from domain.addresses import normalise_phone, normalise_suppression
from domain.reply_intent import intent_by_rules
from domain.sms_keywords import SmsIntent, classify_sms
from domain.unsubscribe_tokens import UnsubscribeClaim
from schemas.enums import Channel, ExecutionStatus, SkipReason, SuppressionKind
from schemas.events import ContactData, ContactRef, EventType

SMS_OPT_OUT_REASON = "sms opt-out"
UNSUBSCRIBE_LINK_REASON = "unsubscribe link"
SMS_CHANNEL = "sms"

# Twilio's order of delivery states; a callback never moves a row back down its ladder.
# Callbacks can arrive out of order (`sent` after `delivered`), each is a snapshot.
MESSAGE_STATUS_ORDER = {
    "accepted": 0,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}
CALL_STATUS_ORDER = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "failed": 4,
    "canceled": 4,
}
UNKNOWN_ANSWER = "unknown"
_CODE_LENGTH = 32


@dataclass(frozen=True, slots=True)
class SmsAction:
    """What `receive_sms` did. `duplicate` means the message was seen before and nothing changed."""

    intent: SmsIntent
    contact_id: int | None
    duplicate: bool = False
    skipped_executions: int = 0


def receive_sms(
    session: Session,
    *,
    message_sid: str,
    from_phone: str,
    to_phone: str,
    body: str,
    now: datetime,
    opt_out_type: str | None = None,
) -> SmsAction:
    """Store an inbound SMS once and apply what it means.

    Opt-out keywords suppress the number and stop every contact with it (unsubscribed);
    opt-in keywords lift our own SMS opt-out of that number and un-stop contacts stopped
    as unsubscribed (suppressions an operator added stay). An opt-in keyword from a number
    that never opted out is an answer ("Yes!") and counts as a reply, like any other text;
    HELP changes nothing (Twilio answers it). The message is stored even from an unknown
    number (contact NULL), and its `MessageSid` makes a redelivered webhook a no-op.
    """
    sender = _receiving_sender(session, to_phone)
    workspace_id = sender.workspace_id if sender is not None else DEFAULT_WORKSPACE_ID
    phone = _e164(from_phone)
    contact_ids = _contacts_with_phone(session, phone, workspace_id)
    intent = classify_sms(body, opt_out_type)
    if intent is SmsIntent.OPT_IN and not _opted_out(session, phone, workspace_id):
        intent = SmsIntent.REPLY
    contact_id = contact_ids[0] if contact_ids else None
    # An SMS reply's meaning by the rules: Twilio waits at most 15 s for this answer, too
    # short to also wait for a model.
    meaning = intent_by_rules(body) if intent is SmsIntent.REPLY else None
    inserted = _store_sms(
        session,
        {
            "workspace_id": workspace_id,
            "channel": SMS_CHANNEL,
            "sender_id": sender.id if sender is not None else None,
            "provider_message_id": message_sid,
            "from_address": phone or from_phone[:320],
            "to_address": to_phone[:320],
            "text_body": body,
            "headers": {"OptOutType": opt_out_type} if opt_out_type else {},
            "classification": intent.value,
            "contact_id": contact_id,
            "execution_id": _replied_execution(session, contact_ids, sender),
            "received_at": now,
            "created_at": now,
            **(intent_columns(meaning) if meaning is not None else {}),
        },
    )
    if not inserted:
        return _previous_action(session, message_sid)
    skipped = 0
    if intent is SmsIntent.OPT_OUT:
        if phone is not None:
            add_suppression(session, phone, SMS_OPT_OUT_REASON, now, workspace_id=workspace_id)
        skipped = sum(
            stop_contact(session, each, SkipReason.UNSUBSCRIBED, now, source="twilio") for each in contact_ids
        )
    elif intent is SmsIntent.OPT_IN:
        assert phone is not None  # `_opted_out` found a suppression of it
        remove_suppression(session, phone, reason=SMS_OPT_OUT_REASON, workspace_id=workspace_id)
        _unstop_unsubscribed(session, contact_ids, now)
    elif intent is SmsIntent.REPLY:
        skipped = sum(
            stop_contact(session, each, SkipReason.REPLIED, now, source="twilio", intent=meaning)
            for each in contact_ids
        )
    return SmsAction(intent, contact_id, duplicate=False, skipped_executions=skipped)


def remove_suppression(
    session: Session, value: str, *, reason: str | None = None, workspace_id: int = DEFAULT_WORKSPACE_ID
) -> bool:
    """Allow `value` (email, phone or @domain) again; with `reason`, only a suppression
    added for that reason is lifted. True if one was removed."""
    kind, normalised = normalise_suppression(value)
    statement = delete(Suppression).where(
        Suppression.workspace_id == workspace_id, Suppression.kind == kind.value, Suppression.value == normalised
    )
    if reason is not None:
        statement = statement.where(Suppression.reason == reason)
    result = session.execute(statement.execution_options(synchronize_session=False))
    return changed_rows(result) > 0


def record_delivery_status(
    session: Session,
    *,
    provider_sid: str,
    status: str | None,
    error_code: str | None,
    answered_by: str | None,
    now: datetime,
) -> bool:
    """Store a Twilio status callback (SMS delivery, call progress, machine detection) on
    the execution that holds `provider_sid`. False when no execution has that SID.

    A status only replaces one earlier on Twilio's ladder (a late `sent` never hides
    `delivered`); the conditional UPDATE makes that hold for two callbacks racing. The
    first definite `AnsweredBy` is kept. Unknown SIDs are not kept for later: the send
    activity stores the SID right after Twilio accepts the message, long before a
    handset reports delivery, and every callback carries the latest state, so one lost
    early callback is overwritten by the next.
    """
    found = session.execute(
        select(StepExecution.id, Step.channel)
        .join(Step, Step.id == StepExecution.step_id)
        .where(StepExecution.provider_message_id == provider_sid)
        .order_by(StepExecution.id)
        .limit(1)
    ).first()
    if found is None:
        return False
    execution_id, channel = found
    order = CALL_STATUS_ORDER if channel == Channel.VOICEMAIL.value else MESSAGE_STATUS_ORDER
    status = status.strip().lower() if status else None
    if status in order:
        lower = [name for name, rank in order.items() if rank < order[status]]
        moved = session.execute(
            update(StepExecution)
            .where(
                StepExecution.id == execution_id,
                or_(StepExecution.delivery_status.is_(None), StepExecution.delivery_status.in_(lower)),
            )
            .values(
                delivery_status=status,
                delivery_error_code=func.coalesce(_code(error_code), StepExecution.delivery_error_code),
                delivery_updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if changed_rows(moved):
            record_message_event(session, EventType.MESSAGE_DELIVERY, execution_id, now, delivery_status=status)
    elif error_code:
        _fill_error_code(session, execution_id, error_code, now)
    if answered_by and answered_by.strip():
        session.execute(
            update(StepExecution)
            .where(
                StepExecution.id == execution_id,
                or_(StepExecution.answered_by.is_(None), StepExecution.answered_by == UNKNOWN_ANSWER),
            )
            .values(answered_by=_code(answered_by.strip().lower()), delivery_updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return True


def unsubscribe(session: Session, claim: UnsubscribeClaim, now: datetime) -> bool:
    """Act on a verified unsubscribe link: suppress the contact's email and stop the
    contact in every campaign. Clicking twice changes nothing; False if the contact is gone."""
    contact = session.get(Contact, claim.contact_id)
    if contact is None:
        return False
    if contact.email:
        add_suppression(session, contact.email, UNSUBSCRIBE_LINK_REASON, now, workspace_id=contact.workspace_id)
    stop_contact(session, contact.id, SkipReason.UNSUBSCRIBED, now, source="link")
    return True


def _fill_error_code(session: Session, execution_id: int, error_code: str, now: datetime) -> None:
    session.execute(
        update(StepExecution)
        .where(StepExecution.id == execution_id, StepExecution.delivery_error_code.is_(None))
        .values(delivery_error_code=_code(error_code), delivery_updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _code(value: str | None) -> str | None:
    return (value.strip()[:_CODE_LENGTH] or None) if value else None


def _e164(phone: str) -> str | None:
    """The number as contacts and suppressions store it; None for short codes and the like."""
    try:
        return normalise_phone(phone)
    except ValueError:
        return None


def _receiving_sender(session: Session, to_phone: str) -> Sender | None:
    """Our number the text was sent to, which also says whose workspace it is."""
    number = _e164(to_phone)
    if number is None:
        return None
    return session.scalars(
        select(Sender)
        .where(Sender.channel.in_([Channel.SMS.value, Channel.VOICEMAIL.value]), Sender.address == number)
        .order_by(Sender.channel, Sender.id)
        .limit(1)
    ).first()


def _contacts_with_phone(session: Session, phone: str | None, workspace_id: int) -> list[int]:
    """Every contact with this number, oldest first: one person may be in several lead lists."""
    if phone is None:
        return []
    query = select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.phone == phone)
    return list(session.scalars(query.order_by(Contact.id)))


def _opted_out(session: Session, phone: str | None, workspace_id: int) -> bool:
    if phone is None:
        return False
    found = session.scalar(
        select(Suppression.id).where(
            Suppression.workspace_id == workspace_id,
            Suppression.kind == SuppressionKind.PHONE.value,
            Suppression.value == phone,
            Suppression.reason == SMS_OPT_OUT_REASON,
        )
    )
    return found is not None


def _replied_execution(session: Session, contact_ids: Sequence[int], sender: Sender | None) -> int | None:
    """The latest text we sent these contacts (from the receiving number if known), so a
    reply can be traced to the step that prompted it."""
    if not contact_ids:
        return None
    query = (
        select(StepExecution.id)
        .join(Step, Step.id == StepExecution.step_id)
        .where(
            StepExecution.contact_id.in_(contact_ids),
            StepExecution.status == ExecutionStatus.SENT.value,
            Step.channel == Channel.SMS.value,
        )
        .order_by(StepExecution.sent_at.desc(), StepExecution.id.desc())
        .limit(1)
    )
    if sender is not None:
        query = query.where(StepExecution.sender_id == sender.id)
    return session.scalar(query)


def _store_sms(session: Session, row: dict[str, Any]) -> bool:
    """Insert the message unless its SID is already stored; True if this call stored it."""
    table = cast(Table, InboundMessage.__table__)
    statement = (
        dialect_insert(session, table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["channel", "provider_message_id"])
        .returning(table.c.id)
    )
    return session.scalar(statement) is not None


def _previous_action(session: Session, message_sid: str) -> SmsAction:
    classification, contact_id = session.execute(
        select(InboundMessage.classification, InboundMessage.contact_id).where(
            InboundMessage.channel == SMS_CHANNEL, InboundMessage.provider_message_id == message_sid
        )
    ).one()
    try:
        intent = SmsIntent(classification)
    except ValueError:
        intent = SmsIntent.REPLY
    return SmsAction(intent, contact_id, duplicate=True)


def _unstop_unsubscribed(session: Session, contact_ids: Sequence[int], now: datetime) -> None:
    """Contacts stopped for another reason (a reply, a bounce) stay stopped. Each contact
    that opted back in tells the app (`contact.resubscribed`)."""
    if not contact_ids:
        return
    _contacts = cast(Table, Contact.__table__)
    resubscribed = session.execute(
        update(_contacts)
        .where(_contacts.c.id.in_(contact_ids), _contacts.c.stopped_reason == SkipReason.UNSUBSCRIBED.value)
        .values(stopped_reason=None, stopped_at=None, updated_at=now)
        .returning(_contacts.c.id, _contacts.c.email, _contacts.c.phone, _contacts.c.workspace_id)
    ).all()
    for contact_id, email, phone, workspace_id in resubscribed:
        data = ContactData(
            contact=ContactRef(id=contact_id, email=email, phone=phone), reason="resubscribed", source="twilio", at=now
        )
        record_event(session, EventType.CONTACT_RESUBSCRIBED, data, now, workspace_id)
