"""The events table (DESIGN W1): written in the transaction of the change each reports,
read by delivery in `position` order.

A row's id is fixed when it is inserted, but transactions commit in their own order: a
reader that trusted ids could pass over an event whose transaction committed after a
higher id was read. So delivery reads `position`, which `assign_positions` gives to
committed rows, one caller at a time, in the order they became visible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from db.engine import Statements
from db.models import DEFAULT_WORKSPACE_ID, Campaign, Contact, Event, Sender, Step, StepExecution
from schemas.events import EVENT_DATA, ContactRef, EventType, MessageData

EVENTS = cast(Table, Event.__table__)
# One session positions events at a time (PostgreSQL: a transaction-scoped advisory lock;
# SQLite serialises writers by itself).
POSITIONING_LOCK = 0x0E7E_0001
POSITION_BATCH = 1000


def event_values(
    kind: EventType, data: BaseModel, now: datetime, workspace_id: int = DEFAULT_WORKSPACE_ID
) -> dict[str, object]:
    """The row for an event; its data must be the model its type documents."""
    expected = EVENT_DATA[kind]
    if not isinstance(data, expected):
        raise TypeError(f"{kind.value} carries {expected.__name__}, not {type(data).__name__}")
    return {
        "workspace_id": workspace_id,
        "type": kind.value,
        "data": data.model_dump(mode="json", exclude_none=True),
        "occurred_at": now,
    }


def record_event(
    target: Session | Statements,
    kind: EventType,
    data: BaseModel,
    now: datetime,
    workspace_id: int = DEFAULT_WORKSPACE_ID,
) -> None:
    """Add the event to the caller's transaction: it commits, or rolls back, with the change."""
    statement = insert(EVENTS).values(**event_values(kind, data, now, workspace_id))
    if isinstance(target, Statements):
        target.count(statement)
    else:
        target.execute(statement)


def assign_positions(session: Session, limit: int = POSITION_BATCH) -> int:
    """Give the committed events that have none the next positions, in id order; how many."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSITIONING_LOCK})
    unpositioned = select(EVENTS.c.id).where(EVENTS.c.position.is_(None)).order_by(EVENTS.c.id).limit(limit)
    waiting = list(session.scalars(unpositioned))
    if not waiting:
        return 0
    last = session.scalar(select(func.max(EVENTS.c.position))) or 0
    session.execute(
        update(EVENTS).where(EVENTS.c.id == bindparam("b_id")).values(position=bindparam("b_position")),
        [{"b_id": event_id, "b_position": last + offset} for offset, event_id in enumerate(waiting, 1)],
    )
    return len(waiting)


def record_message_event(session: Session, kind: EventType, execution_id: int, now: datetime, **details: Any) -> None:
    """A `message.*` event about one execution: which message it is (campaign, step,
    channel, the contact and their address, the sender, the provider's id, when it was
    sent), read from the row in the caller's transaction, plus what this event adds."""
    row = session.execute(
        select(
            StepExecution.campaign_id, Step.position, Step.channel, Contact.id, Contact.email, Contact.phone,
            Sender.address, StepExecution.provider_message_id, StepExecution.sent_at, Campaign.workspace_id,
        )
        .join(Step, Step.id == StepExecution.step_id)
        .join(Contact, Contact.id == StepExecution.contact_id)
        .join(Campaign, Campaign.id == StepExecution.campaign_id)
        .outerjoin(Sender, Sender.id == StepExecution.sender_id)
        .where(StepExecution.id == execution_id)
    ).one()  # fmt: skip
    campaign_id, position, channel, contact_id, email, phone, sender, provider_id, sent_at, workspace_id = row
    data = MessageData(
        message_id=execution_id,
        campaign_id=campaign_id,
        step=position,
        channel=channel,
        contact=ContactRef(id=contact_id, email=email, phone=phone),
        sender=sender,
        provider_message_id=provider_id,
        sent_at=sent_at,
        **details,
    )
    record_event(session, kind, data, now, workspace_id)
