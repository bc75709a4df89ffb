"""The grouped queries behind the analytics buckets: what happened, per campaign, step and
UTC hour or day, counted in the database (never one round trip per contact).

What each measure counts, and by which time it is bucketed:
- `scheduled`: every planned execution row, by its slot (`scheduled_for`), whatever became
  of it, so per day it reads as the plan and over a campaign as every planned message.
  Rows never planned (the (step, contact) pairs a cancel closes) have no slot and are not
  scheduled; they count as cancelled.
- `sent`: SENT rows by `sent_at`.
- `skipped` (by `skip_reason`), `failed`, `cancelled`: closed rows by the time they closed
  (`updated_at`, else their slot).
- `replied`, `bounced`, `unsubscribed`: responses, by the time they came in, attributed to
  the step the contact was answering: the execution an inbound message references (email
  Message-ID or thread, the texted number), else the contact's latest message sent before
  the response. Responses are inbound messages classified reply / unsubscribe (email) or
  reply / opt_out (SMS) / hard bounce, and contact stops without a message (the CLI, the
  app's `contact_replied`, unsubscribe links, soft bounces past the threshold). Each
  contact counts at most once per kind and campaign, at its first response of that kind,
  so summing buckets never double counts a contact who wrote twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, func, literal_column, select, type_coerce, union_all
from sqlalchemy.orm import Session

from db.models import Contact, InboundMessage, StepExecution
from db.types import UTCDateTime
from domain.inbound_classify import InboundKind
from domain.sms_keywords import SmsIntent
from schemas.analytics_io import Period
from schemas.enums import ExecutionStatus, SkipReason

SCHEDULED = "scheduled"
SENT = "sent"
REPLIED = SkipReason.REPLIED.value
BOUNCED = SkipReason.BOUNCED.value
UNSUBSCRIBED = SkipReason.UNSUBSCRIBED.value
CLOSED_MEASURES = {
    ExecutionStatus.SKIPPED.value: "skipped",
    ExecutionStatus.FAILED.value: "failed",
    ExecutionStatus.CANCELLED.value: "cancelled",
}
# Inbound classifications (email: domain/inbound_classify.py, SMS: db/webhook_events.py)
# that are responses. Soft bounces are transient: only the stop at the threshold counts.
RESPONSE_CLASSES = {
    InboundKind.REPLY.value: REPLIED,  # also SmsIntent.REPLY
    InboundKind.UNSUBSCRIBE.value: UNSUBSCRIBED,
    SmsIntent.OPT_OUT.value: UNSUBSCRIBED,
    InboundKind.BOUNCE_HARD.value: BOUNCED,
}
RESPONSE_STOPS = (REPLIED, BOUNCED, UNSUBSCRIBED)
_IDENTIFIER = re.compile(r"^[a-z_]+$")
_BUCKET_FORMATS = {"hour": "%Y-%m-%d %H:00:00.000000", "day": "%Y-%m-%d 00:00:00.000000"}


@dataclass(frozen=True, slots=True)
class Measure:
    """One grouped count: `count` of `measure` (and skip `reason`) in one bucket."""

    campaign_id: int
    step_id: int
    bucket_start: datetime
    measure: str
    count: int
    reason: str | None = None


def bucket(column: ColumnElement[Any], period: Period, dialect: str) -> ColumnElement[datetime]:
    """The UTC hour or day a timestamp falls in, computed in SQL.

    Written without bind parameters: PostgreSQL matches a GROUP BY expression to the
    selected one textually, and two placeholders for the same value do not match. SQLite
    stores UTC as text in SQLAlchemy's format, so the bucket is that text, truncated."""
    if period not in _BUCKET_FORMATS:
        raise ValueError(f"unknown analytics period {period!r}")
    if dialect == "postgresql":
        expression = func.date_trunc(literal_column(f"'{period}'"), column, literal_column("'UTC'"))
    elif dialect == "sqlite":
        expression = func.strftime(literal_column(f"'{_BUCKET_FORMATS[period]}'"), column)
    else:
        raise NotImplementedError(f"analytics buckets are implemented for SQLite and PostgreSQL, not {dialect}")
    return type_coerce(expression, UTCDateTime())


def execution_measures(session: Session, period: Period, campaign_ids: Sequence[int]) -> list[Measure]:
    """Scheduled, sent and closed rows of these campaigns, grouped into buckets."""
    dialect = session.get_bind().dialect.name
    x = StepExecution
    scope = x.campaign_id.in_(list(campaign_ids))
    found: list[Measure] = []
    timed: list[tuple[str, ColumnElement[Any], ColumnElement[bool]]] = [
        (SCHEDULED, x.scheduled_for.expression, x.scheduled_for.is_not(None)),
        (SENT, x.sent_at.expression, and_(x.status == ExecutionStatus.SENT.value, x.sent_at.is_not(None))),
    ]
    for measure, moment, condition in timed:
        slot = bucket(moment, period, dialect)
        rows = session.execute(
            select(x.campaign_id, x.step_id, slot, func.count())
            .where(scope, condition)
            .group_by(x.campaign_id, x.step_id, slot)
        )
        found += [Measure(campaign, step, start, measure, count) for campaign, step, start, count in rows]
    closed_at = bucket(func.coalesce(x.updated_at, x.scheduled_for), period, dialect)
    closed = session.execute(
        select(x.campaign_id, x.step_id, closed_at, x.status, x.skip_reason, func.count())
        .where(scope, x.status.in_(list(CLOSED_MEASURES)), func.coalesce(x.updated_at, x.scheduled_for).is_not(None))
        .group_by(x.campaign_id, x.step_id, closed_at, x.status, x.skip_reason)
    )
    for campaign, step, start, status, reason, count in closed:
        measure = CLOSED_MEASURES[status]
        found.append(
            Measure(campaign, step, start, measure, count, (reason or "unknown") if measure == "skipped" else None)
        )
    return found


def response_measures(session: Session, period: Period, campaign_ids: Sequence[int]) -> list[Measure]:
    """Replies, bounces and opt-outs attributed to these campaigns' steps (see the module)."""
    dialect = session.get_bind().dialect.name
    ids = list(campaign_ids)
    im, contact, x = InboundMessage, Contact, StepExecution
    contacts = select(x.contact_id).where(x.campaign_id.in_(ids))
    kind = case(*((im.classification == _const(cls), _const(name)) for cls, name in RESPONSE_CLASSES.items()))
    classes = list(RESPONSE_CLASSES)
    direct = (
        select(x.campaign_id, x.step_id, x.contact_id, kind.label("kind"), im.received_at.label("at"))
        .select_from(im)
        .join(x, x.id == im.execution_id)
        .where(im.classification.in_(classes), x.campaign_id.in_(ids))
    )
    unattributed = union_all(
        select(
            _const("i").label("src"),
            im.id.label("ref"),
            im.contact_id.label("contact_id"),
            kind.label("kind"),
            im.received_at.label("at"),
        ).where(im.execution_id.is_(None), im.classification.in_(classes), im.contact_id.in_(contacts)),
        select(_const("c"), contact.id, contact.id, contact.stopped_reason, contact.stopped_at).where(
            contact.stopped_reason.in_(RESPONSE_STOPS), contact.stopped_at.is_not(None), contact.id.in_(contacts)
        ),
    ).subquery("unattributed")
    answered = StepExecution.__table__.alias("answered")
    latest = func.row_number().over(
        partition_by=(unattributed.c.src, unattributed.c.ref),
        order_by=(answered.c.sent_at.desc(), answered.c.id.desc()),
    )
    ranked = (
        select(
            answered.c.campaign_id,
            answered.c.step_id,
            unattributed.c.contact_id,
            unattributed.c.kind,
            unattributed.c.at,
            latest.label("rank"),
        )
        .select_from(unattributed)
        .join(
            answered,
            and_(
                answered.c.contact_id == unattributed.c.contact_id,
                answered.c.status == ExecutionStatus.SENT.value,
                answered.c.sent_at <= unattributed.c.at,
            ),
        )
        .subquery("ranked")
    )
    inferred = select(ranked.c.campaign_id, ranked.c.step_id, ranked.c.contact_id, ranked.c.kind, ranked.c.at).where(
        ranked.c.rank == 1, ranked.c.campaign_id.in_(ids)
    )
    events = union_all(direct, inferred).subquery("events")
    nth = func.row_number().over(
        partition_by=(events.c.campaign_id, events.c.contact_id, events.c.kind),
        order_by=(events.c.at, events.c.step_id),
    )
    firsts = select(events, nth.label("nth")).subquery("firsts")
    slot = bucket(firsts.c.at, period, dialect)
    rows = session.execute(
        select(firsts.c.campaign_id, firsts.c.step_id, slot, firsts.c.kind, func.count())
        .where(firsts.c.nth == 1)
        .group_by(firsts.c.campaign_id, firsts.c.step_id, slot, firsts.c.kind)
    )
    return [Measure(campaign, step, start, name, count) for campaign, step, start, name, count in rows]


def _const(value: str) -> ColumnElement[str]:
    """One of our own identifiers as an SQL literal: a bind parameter in a UNION's select
    list leaves PostgreSQL unable to tell its type."""
    if not _IDENTIFIER.match(value):
        raise ValueError(f"not an identifier: {value!r}")
    return literal_column(f"'{value}'", String())
