"""Warmup ramps on sender rows and the daily quota reset.

The quota claim (db/sending.py) and planning read `senders.daily_limit`; this module keeps
that column equal to the ramp's limit for the sender's own day (DESIGN R6). Both writes are
idempotent: the limit is a function of the day, and the counter reset only touches a
sender whose counted day is over, so it can never give a mailbox a second quota for the
day it is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from db.engine import changed_rows
from db.models import DEFAULT_WORKSPACE_ID, Sender
from domain.addresses import normalise_sender_address
from domain.calendar import zone
from domain.warmup import WarmupRamp, ramp_of
from schemas.enums import Channel


@dataclass(frozen=True, slots=True)
class ResetCounts:
    senders: int
    counters_reset: int
    limits_changed: int
    warming_up: int


def sender_ramp(sender: Sender) -> WarmupRamp | None:
    return ramp_of(sender.warmup_start, sender.warmup_increment, sender.warmup_ceiling, sender.warmup_began_on)


def sender_today(sender: Sender, moment: datetime) -> date:
    """The sender's own calendar day at `moment` (its quota day, R6)."""
    return moment.astimezone(zone(sender.timezone)).date()


def find_sender(
    session: Session, channel: Channel, address: str, *, workspace_id: int = DEFAULT_WORKSPACE_ID
) -> Sender:
    """The sender registered for this channel and address; LookupError names what is missing."""
    normalised = normalise_sender_address(channel, address)
    sender = session.scalar(
        select(Sender).where(
            Sender.workspace_id == workspace_id, Sender.channel == channel.value, Sender.address == normalised
        )
    )
    if sender is None:
        raise LookupError(
            f"no {channel.value} sender {normalised!r}: register it first with `outbound senders add`"
            + (" or `outbound senders add-gmail`" if channel is Channel.EMAIL else "")
        )
    return sender


def set_warmup(session: Session, sender: Sender, ramp: WarmupRamp | None, now: datetime) -> int:
    """Store (or with None, remove) the sender's ramp; returns the daily limit now in force.

    With a ramp, today's limit applies at once rather than at the next reset. Without one,
    the limit stays where the ramp left it (`senders add --daily-limit` changes it)."""
    sender.warmup_start = ramp.start if ramp else None
    sender.warmup_increment = ramp.increment if ramp else None
    sender.warmup_ceiling = ramp.ceiling if ramp else None
    sender.warmup_began_on = ramp.began_on if ramp else None
    if ramp is not None:
        sender.daily_limit = ramp.limit_on(sender_today(sender, now))
    session.flush()
    return sender.daily_limit


def reset_day(session: Session, moment: datetime) -> ResetCounts:
    """The daily warmup run: each sender's counter starts over once its day is over, and
    each warming-up sender gets its ramp's limit for the day it is in at `moment`."""
    senders = session.scalars(select(Sender).order_by(Sender.id)).all()
    counters_reset = limits_changed = warming_up = 0
    for sender in senders:
        today = sender_today(sender, moment)
        # Conditional, so a send claimed meanwhile for today is never forgotten.
        reset = session.execute(
            update(Sender)
            .where(Sender.id == sender.id, or_(Sender.quota_day.is_(None), Sender.quota_day < today))
            .values(sends_today=0, quota_day=today)
            .execution_options(synchronize_session=False)
        )
        counters_reset += changed_rows(reset)
        ramp = sender_ramp(sender)
        if ramp is None:
            continue
        warming_up += 1
        limit = ramp.limit_on(today)
        changed = session.execute(
            update(Sender)
            .where(Sender.id == sender.id, Sender.daily_limit != limit)
            .values(daily_limit=limit)
            .execution_options(synchronize_session=False)
        )
        limits_changed += changed_rows(changed)
    return ResetCounts(
        senders=len(senders), counters_reset=counters_reset, limits_changed=limits_changed, warming_up=warming_up
    )
