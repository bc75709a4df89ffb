"""Sender accounts that talk to a real provider: connected Gmail mailboxes and their health.

A mailbox whose grant was revoked is disabled here, with the reason, instead of failing
the sends that meet it: the quota claim refuses a disabled sender, so its contacts wait
(deferred day by day) until someone reconnects it, and every other mailbox goes on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, case, or_, select, update
from sqlalchemy.orm import Session

from db.dialect import dialect_insert
from db.events import record_event
from db.models import DEFAULT_WORKSPACE_ID, MailboxSync, Sender
from domain.addresses import normalise_sender_address
from runtime.settings import MailboxPauseSettings
from schemas.campaign_file import validate_timezone
from schemas.enums import Channel
from schemas.events import EventType, MailboxData

ACTIVE = "active"
_SENDERS = cast(Table, Sender.__table__)
DISABLED = "disabled"


def connect_gmail_mailbox(
    session: Session,
    *,
    address: str,
    credentials_encrypted: str,
    daily_limit: int,
    timezone: str,
    now: datetime,
    workspace_id: int = DEFAULT_WORKSPACE_ID,
) -> Sender:
    """Register (or reconnect) a Gmail mailbox: new credentials re-enable a disabled one."""
    if daily_limit < 1:
        raise ValueError("daily_limit must be at least 1")
    address = normalise_sender_address(Channel.EMAIL, address)
    timezone = validate_timezone(timezone)
    changes: dict[str, Any] = {
        "provider": "gmail",
        "daily_limit": daily_limit,
        "timezone": timezone,
        "credentials_encrypted": credentials_encrypted,
        "status": ACTIVE,
        "status_reason": None,
        "paused_until": None,
    }
    key = {"workspace_id": workspace_id, "channel": Channel.EMAIL.value, "address": address}
    table = cast(Table, Sender.__table__)
    statement = dialect_insert(session, table).values(**key, **changes, sends_today=0, created_at=now)
    session.execute(statement.on_conflict_do_update(index_elements=list(key), set_=changes))
    return session.scalars(
        select(Sender)
        .where(Sender.workspace_id == workspace_id, Sender.channel == Channel.EMAIL.value, Sender.address == address)
        .execution_options(populate_existing=True)
    ).one()


def stored_credentials(session: Session, address: str) -> str | None:
    """The encrypted credentials of the Gmail mailbox with this address, if connected."""
    return session.scalar(
        select(Sender.credentials_encrypted).where(
            Sender.channel == Channel.EMAIL.value, Sender.provider == "gmail", Sender.address == address.lower()
        )
    )


def disable_sender(session: Session, sender_id: int, reason: str, now: datetime | None = None) -> bool:
    """Stop using a sender until it is reconnected; the first reason is kept, and the app
    hears of it once (`mailbox.disabled`)."""
    now = now or datetime.now(UTC)
    row = session.execute(
        update(_SENDERS)
        .where(_SENDERS.c.id == sender_id, _SENDERS.c.status == ACTIVE)
        .values(status=DISABLED, status_reason=reason[:500])
        .returning(_SENDERS.c.address, _SENDERS.c.workspace_id)
    ).first()
    if row is None:
        return False
    data = MailboxData(sender_id=sender_id, address=row[0], reason=reason[:500], at=now)
    record_event(session, EventType.MAILBOX_DISABLED, data, now, row[1])
    return True


class Throttling(NamedTuple):
    paused_until: datetime | None  # set while the mailbox is paused
    newly_paused: bool  # this failure was the one that paused it


def note_throttling(session: Session, sender_id: int, now: datetime, policy: MailboxPauseSettings) -> Throttling:
    """Count one rate limit or provider 5xx against a mailbox (R12). The failure that makes
    `after_failures` within `within_seconds` pauses the mailbox for `pause_seconds`, so its
    sends wait for the provider instead of each retrying into it. The count is a window,
    not a streak: successes in between do not reset it, so a send pays nothing for this."""
    window_start = now - timedelta(seconds=policy.within_seconds)
    fresh = or_(Sender.throttled_since.is_(None), Sender.throttled_since < window_start)
    session.execute(
        update(Sender)
        .where(Sender.id == sender_id)
        .values(
            throttled_count=case((fresh, 1), else_=Sender.throttled_count + 1),
            throttled_since=case((fresh, now), else_=Sender.throttled_since),
        )
        .execution_options(synchronize_session=False)
    )
    count, paused_until = session.execute(
        select(Sender.throttled_count, Sender.paused_until).where(Sender.id == sender_id)
    ).one()
    if paused_until is not None and paused_until > now:
        return Throttling(paused_until, newly_paused=False)
    if count < policy.after_failures:
        return Throttling(None, newly_paused=False)
    until = now + timedelta(seconds=policy.pause_seconds)
    address, workspace_id = session.execute(
        update(_SENDERS)
        .where(_SENDERS.c.id == sender_id)
        .values(paused_until=until, throttled_count=0, throttled_since=None)
        .returning(_SENDERS.c.address, _SENDERS.c.workspace_id)
    ).one()
    reason = f"{count} rate limits or provider errors within {policy.within_seconds} s"
    data = MailboxData(sender_id=sender_id, address=address, reason=reason, paused_until=until, at=now)
    record_event(session, EventType.MAILBOX_PAUSED, data, now, workspace_id)
    return Throttling(until, newly_paused=True)


def exhaust_quota(session: Session, sender_id: int, day: date, limit: int) -> None:
    """The provider says the mailbox's daily limit is used up (sends from outside Outbound
    count too): mark the quota of `day` (whose limit is `limit`) spent so its other sends
    defer without asking again."""
    session.execute(
        update(Sender)
        .where(Sender.id == sender_id)
        .values(sends_today=limit, quota_day=day)
        .execution_options(synchronize_session=False)
    )


def gmail_mailboxes(session: Session, *, workspace_id: int = DEFAULT_WORKSPACE_ID) -> list[tuple[int, str, str]]:
    """(id, address, status) of every connected Gmail mailbox."""
    rows = session.execute(
        select(Sender.id, Sender.address, Sender.status)
        .where(Sender.workspace_id == workspace_id, Sender.provider == "gmail", Sender.channel == Channel.EMAIL.value)
        .order_by(Sender.id)
    ).all()
    return [(row[0], row[1], row[2]) for row in rows]


def gmail_mailbox_state(session: Session, sender_id: int) -> tuple[int, str, str, str | None] | None:
    """(id, address, status, history id of the last sync) of a Gmail mailbox."""
    row = session.execute(
        select(Sender.id, Sender.address, Sender.status, MailboxSync.history_id)
        .outerjoin(MailboxSync, MailboxSync.sender_id == Sender.id)
        .where(Sender.id == sender_id, Sender.provider == "gmail")
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2], row[3])


def record_mailbox_sync(
    session: Session,
    sender_id: int,
    history_id: str | None,
    now: datetime,
    *,
    seen: int = 0,
    full: bool = False,
    error: str | None = None,
) -> None:
    """Where a mailbox's sync got to (its Gmail history id), what it saw, its last error."""
    state = session.get(MailboxSync, sender_id)
    if state is None:
        state = MailboxSync(sender_id=sender_id, messages_seen=0)
        session.add(state)
    if history_id is not None:
        state.history_id = history_id
        state.last_synced_at = now
    if full:
        state.last_full_sync_at = now
    state.messages_seen = (state.messages_seen or 0) + seen
    state.error = error
