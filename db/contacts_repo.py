"""Contacts, lead groups, suppressions and senders: the data a campaign is built from.

Imports are set-based (one upsert per batch of rows, never a query per contact) so a
100,000-row CSV loads in seconds on SQLite and PostgreSQL alike; every write here is
idempotent, so re-running an import or a `suppress add` changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, cast

from sqlalchemy import JSON, Boolean, ColumnElement, Select, String, Table, bindparam, case, func, select, sql, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from db.dialect import dialect_insert, insert_many, refresh_statistics
from db.engine import changed_rows
from db.events import record_event
from db.models import (
    DEFAULT_WORKSPACE_ID,
    Contact,
    Enrollment,
    LeadGroup,
    LeadGroupMember,
    Sender,
    StepExecution,
    Suppression,
)
from domain.addresses import normalise_phone, normalise_sender_address, normalise_suppression
from domain.contacts_csv import ContactRecord
from domain.reply_intent import IntentVerdict
from schemas.campaign_file import validate_timezone
from schemas.enums import Channel, ExecutionStatus, SkipReason
from schemas.events import ContactData, ContactRef, EventType

BATCH_SIZE = 1000
KNOWN_PROVIDERS = frozenset({"outbox", "gmail", "twilio"})
STOPPED_ENROLLMENT = "stopped"
_UPDATABLE = ("phone", "first_name", "last_name", "company", "title", "timezone")
_CONTACTS = cast(Table, Contact.__table__)
_MEMBERS = cast(Table, LeadGroupMember.__table__)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: a re-import of the same file reports only updates."""

    inserted: int = 0
    updated: int = 0
    group_members_added: int = 0

    def __add__(self, other: ImportResult) -> ImportResult:
        added = self.group_members_added + other.group_members_added
        return ImportResult(self.inserted + other.inserted, self.updated + other.updated, added)


STATISTICS_AFTER_ROWS = 10_000


def import_contacts(
    session: Session,
    records: Iterable[ContactRecord],
    group_name: str,
    now: datetime,
    *,
    workspace_id: int = DEFAULT_WORKSPACE_ID,
) -> ImportResult:
    """Upsert `records` in batches and add them to the lead group `group_name`.

    A record with an email is matched on (workspace, email); one with only a phone
    matches a contact with that phone. Empty cells leave existing values alone and
    custom variables are merged, so importing a narrower file does not erase data.
    """
    group_id = ensure_lead_group(session, group_name, workspace_id=workspace_id)
    result = ImportResult()
    for batch in _batches(records, BATCH_SIZE):
        result += _import_batch(session, batch, group_id, now, workspace_id)
    if result.inserted + result.group_members_added >= STATISTICS_AFTER_ROWS:
        # A campaign's enrollment joins these tables: with statistics from before a large
        # import, the database judged a million members one index look-up at a time.
        refresh_statistics(session, Contact.__tablename__)
        refresh_statistics(session, LeadGroupMember.__tablename__)
    return result


def ensure_lead_group(session: Session, name: str, *, workspace_id: int = DEFAULT_WORKSPACE_ID) -> int:
    """The id of the lead group `name`, created if needed."""
    if not name.strip():
        raise ValueError("a lead group needs a name")
    table = cast(Table, LeadGroup.__table__)
    session.execute(
        dialect_insert(session, table)
        .values(workspace_id=workspace_id, name=name.strip())
        .on_conflict_do_nothing(index_elements=["workspace_id", "name"])
    )
    return session.scalars(
        select(LeadGroup.id).where(LeadGroup.workspace_id == workspace_id, LeadGroup.name == name.strip())
    ).one()


def _batches(records: Iterable[ContactRecord], size: int) -> Iterator[list[ContactRecord]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def _import_batch(
    session: Session, batch: list[ContactRecord], group_id: int, now: datetime, workspace_id: int
) -> ImportResult:
    # The last row wins when a key repeats inside a batch (one upsert cannot touch a row twice).
    by_email = {r.email: r for r in batch if r.email}
    by_phone = {r.phone: r for r in batch if not r.email and r.phone}
    inserted, ids = 0, list[int]()
    if by_email:
        # New rows get ids above the current maximum, so the upsert's ids tell inserts from
        # updates without a lookup (a concurrent import of the same emails can blur the counts).
        newest = session.scalar(select(func.max(Contact.id))) or 0
        email_ids = _upsert_by_email(session, list(by_email.values()), now, workspace_id)
        inserted += sum(1 for contact_id in email_ids if contact_id > newest)
        ids += email_ids
    if by_phone:
        new_ids, updated_ids = _upsert_by_phone(session, by_phone, now, workspace_id)
        inserted += len(new_ids)
        ids += new_ids + updated_ids
    added = insert_many(
        session,
        dialect_insert(session, _MEMBERS).on_conflict_do_nothing().returning(_MEMBERS.c.contact_id),
        [{"group_id": group_id, "contact_id": contact_id} for contact_id in set(ids)],
    )
    return ImportResult(inserted, len(batch) - inserted, len(added))


def _row(record: ContactRecord, now: datetime, workspace_id: int) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "email": record.email,
        **{name: getattr(record, name) for name in _UPDATABLE},
        "variables": dict(record.variables),
        "created_at": now,
        "updated_at": now,
    }


def _upsert_by_email(session: Session, records: list[ContactRecord], now: datetime, workspace_id: int) -> list[int]:
    ids: list[int] = []
    for guessed in (False, True):
        rows = [_row(record, now, workspace_id) for record in records if record.timezone_guessed is guessed]
        ids += insert_many(session, _email_upsert(session, keep_timezone=guessed), rows)
    return ids


def _email_upsert(session: Session, *, keep_timezone: bool) -> sql.Insert:
    """Insert or update by (workspace, email); empty fields keep the stored values."""
    statement = dialect_insert(session, _CONTACTS)
    new = statement.excluded
    changes: dict[str, Any] = {name: func.coalesce(new[name], _CONTACTS.c[name]) for name in _UPDATABLE}
    if keep_timezone:  # a zone guessed from the phone never replaces the contact's own
        changes["timezone"] = func.coalesce(_CONTACTS.c.timezone, new.timezone)
    changes["variables"] = _json_merge(session, _CONTACTS.c.variables, new.variables)
    changes["updated_at"] = new.updated_at
    upsert = statement.on_conflict_do_update(index_elements=["workspace_id", "email"], set_=changes)
    return upsert.returning(_CONTACTS.c.id)


def _upsert_by_phone(
    session: Session, by_phone: dict[str, ContactRecord], now: datetime, workspace_id: int
) -> tuple[list[int], list[int]]:
    """Phone-only rows: update the contact with that phone (the oldest if several), else insert."""
    matched = _contacts_by_phone(session, list(by_phone), workspace_id)
    if matched:
        values: dict[str, Any] = {
            name: func.coalesce(bindparam(f"new_{name}"), _CONTACTS.c[name]) for name in _UPDATABLE
        }
        guessed, zone = bindparam("new_timezone_guessed", type_=Boolean), bindparam("new_timezone", type_=String)
        values["timezone"] = case(
            (guessed, func.coalesce(_CONTACTS.c.timezone, zone)), else_=func.coalesce(zone, _CONTACTS.c.timezone)
        )
        values["variables"] = _json_merge(session, _CONTACTS.c.variables, bindparam("new_variables", type_=JSON))
        values["updated_at"] = bindparam("new_updated_at", type_=_CONTACTS.c.updated_at.type)
        session.execute(
            update(_CONTACTS).where(_CONTACTS.c.id == bindparam("match_id")).values(values),
            [_phone_update(contact_id, by_phone[phone], now) for phone, contact_id in matched.items()],
        )
    rows = [_row(record, now, workspace_id) for phone, record in by_phone.items() if phone not in matched]
    new_ids = insert_many(session, dialect_insert(session, _CONTACTS).returning(_CONTACTS.c.id), rows)
    return new_ids, list(matched.values())


def _phone_update(contact_id: int, record: ContactRecord, now: datetime) -> dict[str, Any]:
    return {
        "match_id": contact_id,
        **{f"new_{name}": getattr(record, name) for name in _UPDATABLE},
        "new_variables": dict(record.variables),
        "new_timezone_guessed": record.timezone_guessed,
        "new_updated_at": now,
    }


def _contacts_by_phone(session: Session, phones: list[str], workspace_id: int) -> dict[str, int]:
    """The oldest contact id for each of `phones` that some contact has.

    On PostgreSQL the phones are joined as `unnest(array)`: a 1,000-value `IN (...)`
    became a generic prepared plan that filtered the whole table for every batch
    (statistics are stale in the middle of a bulk load), 50x slower.
    """
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, phones, type_=postgresql.ARRAY(String))
        key = func.unnest(array).table_valued("value").render_derived(name="key")
        query = select(Contact.phone, Contact.id).join(key, Contact.phone == key.c.value)
    else:
        query = select(Contact.phone, Contact.id).where(Contact.phone.in_(phones))
    found: dict[str, int] = {}
    for phone, contact_id in session.execute(query.where(Contact.workspace_id == workspace_id)):
        if phone is not None:
            found[phone] = min(contact_id, found.get(phone, contact_id))
    return found


def _json_merge(session: Session, old: ColumnElement[Any], new: ColumnElement[Any]) -> ColumnElement[Any]:
    """`old` updated with the keys of `new` (both JSON objects), in the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        merged = sql_cast(old, postgresql.JSONB).op("||")(sql_cast(new, postgresql.JSONB))
        return sql_cast(merged, JSON)
    return func.json_patch(old, new, type_=JSON)


def add_suppression(
    session: Session, value: str, reason: str, now: datetime, *, workspace_id: int = DEFAULT_WORKSPACE_ID
) -> Suppression:
    """Never contact `value` again (in any campaign); adding it twice keeps the first reason."""
    kind, normalised = normalise_suppression(value)
    if not reason.strip() or len(reason) > 200:
        raise ValueError("a suppression needs a reason of 1 to 200 characters")
    table = cast(Table, Suppression.__table__)
    session.execute(
        dialect_insert(session, table)
        .values(workspace_id=workspace_id, kind=kind.value, value=normalised, reason=reason.strip(), created_at=now)
        .on_conflict_do_nothing(index_elements=["workspace_id", "kind", "value"])
    )
    return session.scalars(
        select(Suppression).where(
            Suppression.workspace_id == workspace_id, Suppression.kind == kind.value, Suppression.value == normalised
        )
    ).one()


def list_suppressions(session: Session, *, workspace_id: int = DEFAULT_WORKSPACE_ID) -> Sequence[Suppression]:
    return session.scalars(
        select(Suppression)
        .where(Suppression.workspace_id == workspace_id)
        .order_by(Suppression.kind, Suppression.value)
    ).all()


def add_sender(
    session: Session,
    channel: Channel | str,
    address: str,
    provider: str,
    daily_limit: int,
    timezone: str,
    now: datetime,
    *,
    workspace_id: int = DEFAULT_WORKSPACE_ID,
) -> Sender:
    """Register a mailbox or number; re-adding the same channel and address updates it."""
    try:
        channel = Channel(channel)
    except ValueError:
        raise ValueError(f"unknown channel {channel!r} (use {', '.join(c.value for c in Channel)})") from None
    if provider not in KNOWN_PROVIDERS:
        raise ValueError(f"unknown provider {provider!r} (known: {', '.join(sorted(KNOWN_PROVIDERS))})")
    if provider == "gmail":
        raise ValueError("Gmail mailboxes need their OAuth grant: use `outbound senders add-gmail`")
    if provider == "twilio" and channel is Channel.EMAIL:
        raise ValueError("twilio sends sms and voicemail; email goes through gmail or outbox")
    if daily_limit < 1:
        raise ValueError("daily_limit must be at least 1")
    address = normalise_sender_address(channel, address)
    timezone = validate_timezone(timezone)
    table = cast(Table, Sender.__table__)
    changes = {"provider": provider, "daily_limit": daily_limit, "timezone": timezone}
    key = {"workspace_id": workspace_id, "channel": channel.value, "address": address}
    statement = dialect_insert(session, table).values(**key, **changes, sends_today=0, status="active", created_at=now)
    session.execute(statement.on_conflict_do_update(index_elements=list(key), set_=changes))
    return session.scalars(
        select(Sender)
        .where(Sender.workspace_id == workspace_id, Sender.channel == channel.value, Sender.address == address)
        .execution_options(populate_existing=True)
    ).one()


def list_senders(session: Session, *, workspace_id: int = DEFAULT_WORKSPACE_ID) -> Sequence[Sender]:
    return session.scalars(
        select(Sender).where(Sender.workspace_id == workspace_id).order_by(Sender.channel, Sender.address)
    ).all()


def stop_contact(
    session: Session,
    contact_id: int,
    reason: SkipReason | str,
    now: datetime,
    *,
    source: str | None = None,
    message_id: int | None = None,
    intent: IntentVerdict | None = None,
) -> int:
    """Stop all outreach to a contact (reply, bounce, opt-out) in every campaign at once.

    Open executions that have not started sending are skipped; rows already `SENDING`
    are left to finish, and the send gate refuses anything later because the contact is
    flagged. Idempotent: the first stop's reason and time are kept, and only the first
    stop tells the app (`contact.replied`, `contact.bounced`, `contact.unsubscribed`),
    naming the message it answered (`message_id`, an execution) and its campaign when known.
    Returns how many executions were skipped.
    """
    reason = SkipReason(reason)
    first = session.execute(
        update(_CONTACTS)
        .where(_CONTACTS.c.id == contact_id, _CONTACTS.c.stopped_reason.is_(None))
        .values(stopped_reason=reason.value, stopped_at=now)
        .returning(_CONTACTS.c.email, _CONTACTS.c.phone, _CONTACTS.c.workspace_id)
    ).first()
    if first is None and session.scalar(select(Contact.id).where(Contact.id == contact_id)) is None:
        raise LookupError(f"contact {contact_id} does not exist")
    session.execute(
        update(Enrollment)
        .where(Enrollment.contact_id == contact_id, Enrollment.status != STOPPED_ENROLLMENT)
        .values(status=STOPPED_ENROLLMENT)
        .execution_options(synchronize_session=False)
    )
    skipped = changed_rows(
        session.execute(
            update(StepExecution)
            .where(
                StepExecution.contact_id == contact_id,
                StepExecution.status.in_([ExecutionStatus.SCHEDULED.value, ExecutionStatus.QUEUED.value]),
            )
            .values(status=ExecutionStatus.SKIPPED.value, skip_reason=reason.value, lease_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    kind = STOP_EVENTS.get(reason)
    if first is not None and kind is not None:
        email, phone, workspace_id = first
        campaign_id = (
            session.scalar(select(StepExecution.campaign_id).where(StepExecution.id == message_id))
            if message_id is not None
            else None
        )
        data = ContactData(
            contact=ContactRef(id=contact_id, email=email, phone=phone),
            reason=reason.value,
            source=source,
            campaign_id=campaign_id,
            message_id=message_id if campaign_id is not None else None,
            stopped_messages=skipped,
            at=now,
            **(_intent_fields(intent) if intent is not None else {}),
        )
        record_event(session, kind, data, now, workspace_id)
    return skipped


def _intent_fields(intent: IntentVerdict) -> dict[str, Any]:
    referral = intent.referral.model_dump() if intent.referral is not None else None
    return {"intent": intent.intent.value, "referral": referral, "return_date": intent.return_date}


STOP_EVENTS = {
    SkipReason.REPLIED: EventType.CONTACT_REPLIED,
    SkipReason.BOUNCED: EventType.CONTACT_BOUNCED,
    SkipReason.UNSUBSCRIBED: EventType.CONTACT_UNSUBSCRIBED,
}


def find_contact_by_email(session: Session, email: str, *, workspace_id: int = DEFAULT_WORKSPACE_ID) -> Contact | None:
    return session.scalars(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.email == email.strip().lower())
    ).one_or_none()


def find_contact_by_phone(
    session: Session, phone: str, *, default_region: str = "US", workspace_id: int = DEFAULT_WORKSPACE_ID
) -> Contact | None:
    """The oldest contact with this phone number (any common format), or None."""
    try:
        number = normalise_phone(phone, default_region)
    except ValueError:
        return None
    return session.scalars(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.phone == number).order_by(Contact.id)
    ).first()


def list_contacts(
    session: Session, *, group_name: str | None = None, limit: int = 20, workspace_id: int = DEFAULT_WORKSPACE_ID
) -> Sequence[Contact]:
    """The first `limit` contacts (oldest first), optionally of one lead group."""
    query = _contacts(session, group_name, workspace_id)
    return session.scalars(select(Contact).where(Contact.id.in_(query)).order_by(Contact.id).limit(limit)).all()


def count_contacts(session: Session, *, group_name: str | None = None, workspace_id: int = DEFAULT_WORKSPACE_ID) -> int:
    query = _contacts(session, group_name, workspace_id)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def _contacts(session: Session, group_name: str | None, workspace_id: int) -> Select[int]:
    query = select(Contact.id).where(Contact.workspace_id == workspace_id)
    if group_name is None:
        return query
    group_id = session.scalar(
        select(LeadGroup.id).where(LeadGroup.workspace_id == workspace_id, LeadGroup.name == group_name)
    )
    if group_id is None:
        raise LookupError(f"there is no lead group named {group_name!r}")
    return query.join(LeadGroupMember, LeadGroupMember.contact_id == Contact.id).where(
        LeadGroupMember.group_id == group_id
    )
