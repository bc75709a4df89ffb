"""Webhook endpoints and their deliveries (DESIGN W2, W3).

An endpoint takes on events in position order (`take_on_events` moves its cursor and
writes one delivery per wanted event); deliveries are claimed when due, in position
order, under a token a retried claim gets back (R18) and a lease after which a lost
claim is taken again. Each attempt's outcome moves its delivery: delivered, pending
again at its next retry time, or failed once the schedule is spent.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from db.engine import changed_rows
from db.events import EVENTS, assign_positions, record_event
from db.models import DEFAULT_WORKSPACE_ID, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from schemas.events import EndpointData, EventType

ENDPOINTS = cast(Table, WebhookEndpoint.__table__)
DELIVERIES = cast(Table, WebhookDelivery.__table__)
ATTEMPTS_TABLE = cast(Table, WebhookAttempt.__table__)
ENABLED, DISABLED = "enabled", "disabled"
PENDING, DELIVERING, DELIVERED, FAILED = "pending", "delivering", "delivered", "failed"
# Svix's schedule: the first attempt at once, then these waits (each ±10 %); eight in all.
RETRY_WAITS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
ATTEMPTS = len(RETRY_WAITS) + 1
LONGEST_RETRY_AFTER = timedelta(hours=10)


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: int
    url: str
    description: str | None
    event_types: list[str]
    status: str
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    failing_since: datetime | None
    created_at: datetime


def add_endpoint(
    session: Session,
    url: str,
    event_types: Sequence[str],
    secret: str,
    now: datetime,
    *,
    description: str | None = None,
    workspace_id: int = DEFAULT_WORKSPACE_ID,
) -> int:
    """A new endpoint hears events from now on (its cursor starts at the latest position)."""
    assign_positions(session)
    latest = session.scalar(select(func.max(EVENTS.c.position))) or 0
    return int(
        session.execute(
            insert(ENDPOINTS)
            .values(
                workspace_id=workspace_id,
                url=url,
                description=description,
                event_types=sorted(set(event_types)),
                secret=secret,
                status=ENABLED,
                cursor=latest,
                created_at=now,
                updated_at=now,
            )
            .returning(ENDPOINTS.c.id)
        ).scalar_one()
    )


def endpoints(session: Session) -> list[EndpointRow]:
    return [_row(row) for row in session.execute(_ENDPOINT.order_by(ENDPOINTS.c.id))]


def endpoint(session: Session, endpoint_id: int) -> EndpointRow | None:
    row = session.execute(_ENDPOINT.where(ENDPOINTS.c.id == endpoint_id)).first()
    return _row(row) if row is not None else None


_ENDPOINT = select(
    ENDPOINTS.c.id,
    ENDPOINTS.c.url,
    ENDPOINTS.c.description,
    ENDPOINTS.c.event_types,
    ENDPOINTS.c.status,
    ENDPOINTS.c.disabled_reason,
    ENDPOINTS.c.secret,
    ENDPOINTS.c.previous_secret,
    ENDPOINTS.c.previous_secret_until,
    ENDPOINTS.c.failing_since,
    ENDPOINTS.c.created_at,
)


def _row(row: Any) -> EndpointRow:
    return EndpointRow(*row)


def set_enabled(session: Session, endpoint_id: int, now: datetime) -> bool:
    """Enabled again, with a clean failure record; it resumes where its cursor is."""
    return _set(
        session, endpoint_id, DISABLED, {"status": ENABLED, "disabled_reason": None, "failing_since": None}, now
    )


def disable(session: Session, endpoint_id: int, reason: str, now: datetime, *, tell_the_app: bool = False) -> bool:
    """Disabled, once. Disabled by delivery (410, failing for days), the app hears of it
    (`webhook.endpoint_disabled`) on its other endpoints."""
    changed = _set(session, endpoint_id, ENABLED, {"status": DISABLED, "disabled_reason": reason[:500]}, now)
    if changed and tell_the_app:
        url, workspace_id = session.execute(
            select(ENDPOINTS.c.url, ENDPOINTS.c.workspace_id).where(ENDPOINTS.c.id == endpoint_id)
        ).one()
        data = EndpointData(endpoint_id=endpoint_id, url=url, reason=reason[:500], at=now)
        record_event(session, EventType.WEBHOOK_ENDPOINT_DISABLED, data, now, workspace_id)
    return changed


def _set(session: Session, endpoint_id: int, current: str, values: dict[str, Any], now: datetime) -> bool:
    statement = (
        update(ENDPOINTS)
        .where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.status == current)
        .values(**values, updated_at=now)
    )
    return bool(changed_rows(session.execute(statement)))


def rotate_secret(session: Session, endpoint_id: int, new_secret: str, grace_until: datetime, now: datetime) -> bool:
    """The new secret signs from now on; the old one signs beside it until `grace_until`."""
    statement = (
        update(ENDPOINTS)
        .where(ENDPOINTS.c.id == endpoint_id)
        .values(
            previous_secret=ENDPOINTS.c.secret,
            previous_secret_until=grace_until,
            secret=new_secret,
            updated_at=now,
        )
    )
    return bool(changed_rows(session.execute(statement)))


# --- the delivery walk ------------------------------------------------------------------------


def take_on_events(session: Session, endpoint_id: int, now: datetime, limit: int = 1000) -> int:
    """Events past the endpoint's cursor become its deliveries (the ones it wants), and the
    cursor moves past them; how many deliveries were written."""
    assign_positions(session)
    cursor, wanted = session.execute(
        select(ENDPOINTS.c.cursor, ENDPOINTS.c.event_types).where(ENDPOINTS.c.id == endpoint_id)
    ).one()
    rows = session.execute(
        select(EVENTS.c.id, EVENTS.c.position, EVENTS.c.type)
        .where(EVENTS.c.position > cursor)
        .order_by(EVENTS.c.position)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    wanted_types = set(wanted or [])
    new = [
        {"endpoint_id": endpoint_id, "event_id": event_id, "position": position, "status": PENDING, "attempts": 0,
         "next_attempt_at": now, "created_at": now, "updated_at": now}
        for event_id, position, kind in rows
        if not wanted_types or kind in wanted_types
    ]  # fmt: skip
    if new:
        session.execute(insert(DELIVERIES), new)
    session.execute(update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id).values(cursor=rows[-1][1]))
    return len(new)


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_ids: list[int]
    next_due_at: datetime | None  # nothing claimed: when the first pending delivery is due


def claim_deliveries(
    session: Session, endpoint_id: int, limit: int, claim_token: str, now: datetime, lease: timedelta
) -> Claimed:
    """The next due deliveries in position order, DELIVERING under `claim_token` until
    `now + lease`; a retry of the same claim gets the same ones back."""
    earlier = list(
        session.scalars(
            select(DELIVERIES.c.id)
            .where(DELIVERIES.c.endpoint_id == endpoint_id, DELIVERIES.c.claim_token == claim_token,
                   DELIVERIES.c.status == DELIVERING)
            .order_by(DELIVERIES.c.position)
        )
    )  # fmt: skip
    if earlier:
        return Claimed(earlier, None)
    due = or_(DELIVERIES.c.status == PENDING, DELIVERIES.c.status == DELIVERING)  # a lost claim's lease ran out
    ids = list(
        session.scalars(
            select(DELIVERIES.c.id)
            .where(DELIVERIES.c.endpoint_id == endpoint_id, due, DELIVERIES.c.next_attempt_at <= now)
            .order_by(DELIVERIES.c.position)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_(ids))
            .values(status=DELIVERING, claim_token=claim_token, next_attempt_at=now + lease, updated_at=now)
        )
        return Claimed(ids, None)
    next_due = session.scalar(
        select(func.min(DELIVERIES.c.next_attempt_at)).where(
            DELIVERIES.c.endpoint_id == endpoint_id, DELIVERIES.c.status.in_([PENDING, DELIVERING])
        )
    )
    return Claimed([], next_due)


@dataclass(frozen=True, slots=True)
class Outgoing:
    delivery_id: int
    event_id: int
    type: str
    data: dict[str, Any]
    occurred_at: datetime
    attempts: int  # before this one


def outgoing(session: Session, delivery_ids: Sequence[int], claim_token: str) -> list[Outgoing]:
    """The claimed deliveries still held by this claim, with their events, in order."""
    rows = session.execute(
        select(DELIVERIES.c.id, EVENTS.c.id, EVENTS.c.type, EVENTS.c.data, EVENTS.c.occurred_at, DELIVERIES.c.attempts)
        .join(EVENTS, EVENTS.c.id == DELIVERIES.c.event_id)
        .where(DELIVERIES.c.id.in_(list(delivery_ids)), DELIVERIES.c.claim_token == claim_token,
               DELIVERIES.c.status == DELIVERING)
        .order_by(DELIVERIES.c.position)
    ).all()  # fmt: skip
    return [Outgoing(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int | None
    latency_ms: int | None
    error: str | None = None
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Answered:
    """One delivery attempt's outcome, as it is recorded."""

    item: Outgoing
    answer: Answer
    at: datetime


def record_answer(
    session: Session, endpoint_id: int, claim_token: str, item: Outgoing, answer: Answer, now: datetime
) -> str:
    """One attempt recorded (see `record_answers`); the delivery's status."""
    return record_answers(session, endpoint_id, claim_token, [Answered(item, answer, now)])[0]


def record_answers(session: Session, endpoint_id: int, claim_token: str, answered: Sequence[Answered]) -> list[str]:
    """The attempts, and where each leaves its delivery: delivered, pending until its next
    time (the schedule's, or a longer `Retry-After`), or failed; each delivery's status.
    A delivery replayed while its attempt was in flight is no longer this claim's: the
    attempt is recorded, and the replay stays pending to be sent again.

    The attempts of a run of posts are recorded together (one insert, one commit) because a
    commit per event was most of what delivering cost; a worker that dies before they are
    recorded posts them again under the same `webhook-id`, which receivers deduplicate."""
    if not answered:
        return []
    session.execute(
        insert(ATTEMPTS_TABLE),
        [
            {
                "delivery_id": one.item.delivery_id,
                "attempt": one.item.attempts + 1,
                "attempted_at": one.at,
                "status_code": one.answer.status_code,
                "latency_ms": one.answer.latency_ms,
                "error": one.answer.error[:500] if one.answer.error else None,
            }
            for one in answered
        ],
    )
    delivered = [position for position, one in enumerate(answered) if one.answer.delivered]
    if delivered:  # the endpoint answers: it is not failing (any more)
        session.execute(
            update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.failing_since.is_not(None))
            .values(failing_since=None)
        )  # fmt: skip
    failing_after = answered[delivered[-1] + 1 :] if delivered else answered
    if failing_after:  # failing since the first failure no delivery followed
        session.execute(
            update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.failing_since.is_(None))
            .values(failing_since=failing_after[0].at)
        )  # fmt: skip
    return [_settle(session, claim_token, one) for one in answered]


def _settle(session: Session, claim_token: str, one: Answered) -> str:
    attempt = one.item.attempts + 1
    answer = one.answer
    values: dict[str, Any] = {
        "attempts": attempt,
        "last_status_code": answer.status_code,
        "claim_token": None,
        "last_error": answer.error[:500] if answer.error else None,
        "updated_at": one.at,
    }
    if answer.delivered:
        status = DELIVERED
        values |= {"status": status, "delivered_at": one.at}
    elif attempt >= ATTEMPTS:
        status = FAILED
        values |= {"status": status}
    else:
        status = PENDING
        wait = RETRY_WAITS[attempt - 1] * random.uniform(0.9, 1.1)  # jitter
        if answer.retry_after is not None:
            wait = max(wait, min(answer.retry_after, LONGEST_RETRY_AFTER))
        values |= {"status": status, "next_attempt_at": one.at + wait}
    still_ours = session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.id == one.item.delivery_id, DELIVERIES.c.claim_token == claim_token)
        .values(**values)
    )
    return status if changed_rows(still_ours) else PENDING


def release(session: Session, delivery_ids: Sequence[int], now: datetime) -> None:
    """Claimed deliveries that were not attempted go back to waiting, due at once."""
    if delivery_ids:
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_(list(delivery_ids)), DELIVERIES.c.status == DELIVERING)
            .values(status=PENDING, claim_token=None, next_attempt_at=now, updated_at=now)
        )


def failing_since(session: Session, endpoint_id: int) -> datetime | None:
    return session.scalar(select(ENDPOINTS.c.failing_since).where(ENDPOINTS.c.id == endpoint_id))


def replay(
    session: Session,
    now: datetime,
    *,
    event_id: int | None = None,
    endpoint_id: int | None = None,
    since: datetime | None = None,
) -> int:
    """Deliver again, at once, with the same `webhook-id`: one event (to every endpoint that
    had it, or one), or everything an endpoint had since a time. How many deliveries.
    One in flight counts too: its attempt finishes, and the replay follows it."""  # fmt: skip
    if event_id is not None and endpoint_id is not None:
        _ensure_delivery(session, endpoint_id, event_id, now)
    conditions = []
    if event_id is not None:
        conditions.append(DELIVERIES.c.event_id == event_id)
    if endpoint_id is not None:
        conditions.append(DELIVERIES.c.endpoint_id == endpoint_id)
    if since is not None:
        conditions.append(DELIVERIES.c.created_at >= since)
    statement = (
        update(DELIVERIES)
        .where(and_(*conditions), DELIVERIES.c.status.in_([DELIVERED, FAILED, PENDING, DELIVERING]))
        .values(status=PENDING, attempts=0, next_attempt_at=now, claim_token=None, updated_at=now)
    )
    return changed_rows(session.execute(statement))


def _ensure_delivery(session: Session, endpoint_id: int, event_id: int, now: datetime) -> None:
    """An event the endpoint never had (added later, or of a type it does not want) can
    still be replayed to it on purpose."""
    assign_positions(session)
    position = session.scalar(select(EVENTS.c.position).where(EVENTS.c.id == event_id))
    if position is None:
        raise LookupError(f"no event evt_{event_id}")
    exists = session.scalar(
        select(DELIVERIES.c.id).where(DELIVERIES.c.endpoint_id == endpoint_id, DELIVERIES.c.event_id == event_id)
    )
    if exists is None:
        session.execute(
            insert(DELIVERIES).values(
                endpoint_id=endpoint_id, event_id=event_id, position=position, status=PENDING, attempts=0,
                next_attempt_at=now, created_at=now, updated_at=now,
            )
        )  # fmt: skip
