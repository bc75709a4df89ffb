"""The items of a bulk job (DESIGN J4): written once with the job, claimed in windows by
the bulk workflow (the table is the cursor), each with its own attempts and outcome."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from db.engine import changed_rows
from db.jobs import NewJob, enqueue, view
from db.models import Job, JobItem
from schemas.jobs import JobView

WAITING, ACTIVE, COMPLETED, FAILED = "waiting", "active", "completed", "failed"
ITEM_BATCH = 5000


def add_items(session: Session, job_id: int, items: Iterable[dict[str, Any]], now: datetime) -> int:
    """Writes the items in chunks as they come (a file of millions never sits in memory);
    how many there were."""
    count = 0
    source = iter(items)
    while chunk := list(islice(source, ITEM_BATCH)):
        rows = [
            {"job_id": job_id, "seq": count + offset + 1, "data": data, "status": WAITING, "attempts": 0,
             "updated_at": now}
            for offset, data in enumerate(chunk)
        ]  # fmt: skip
        session.execute(insert(JobItem), rows)
        count += len(rows)
    return count


def write_bulk_job(
    session: Session, job: NewJob, items: Iterable[dict[str, Any]], now: datetime
) -> tuple[JobView, bool]:
    """A bulk job's row and its items, in the caller's transaction; the same (queue, job id)
    again returns the existing job and writes nothing (False). ValueError for no items."""
    job_id, created = enqueue(session, job, now)
    if created:
        count = add_items(session, job_id, items, now)
        if not count:
            raise ValueError("a bulk job needs at least one item")
        set_item_count(session, job_id, count)
    return view(session.get_one(Job, job_id)), created


def set_item_count(session: Session, job_id: int, count: int) -> None:
    session.execute(
        update(Job).where(Job.id == job_id).values(items=count).execution_options(synchronize_session=False)
    )


def claim_items(
    session: Session, job_id: int, limit: int, claim_token: str, now: datetime, *, take_over: bool = False
) -> list[int]:
    """The next `limit` waiting items, now ACTIVE under `claim_token`; a retry of the same
    claim (same token) gets the same items back instead of others. With `take_over`, items
    left ACTIVE by another run (its token's run id differs) are taken too: only a run that
    has nothing in flight asks, once nothing is waiting."""
    earlier = list(
        session.scalars(
            select(JobItem.id).where(
                JobItem.job_id == job_id, JobItem.claim_token == claim_token, JobItem.status == ACTIVE
            )
        )
    )
    if earlier or limit <= 0:
        return sorted(earlier)
    run = claim_token.split(":", 1)[0]
    claimable = and_(JobItem.status == WAITING, or_(JobItem.not_before.is_(None), JobItem.not_before <= now))
    if take_over:
        foreign = or_(JobItem.claim_token.is_(None), JobItem.claim_token.not_like(f"{run}:%"))
        claimable = or_(claimable, and_(JobItem.status == ACTIVE, foreign))
    ids = list(
        session.scalars(select(JobItem.id).where(JobItem.job_id == job_id, claimable).order_by(JobItem.id).limit(limit))
    )
    if not ids:
        return []
    session.execute(
        update(JobItem)
        .where(JobItem.id.in_(ids), JobItem.status.in_([WAITING, ACTIVE]))
        .values(status=ACTIVE, claim_token=claim_token, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return ids


def next_retry_at(session: Session, job_id: int) -> datetime | None:
    """When the first item waiting for its retry is due (None: none waits)."""
    return session.scalar(
        select(func.min(JobItem.not_before)).where(JobItem.job_id == job_id, JobItem.status == WAITING)
    )


def retry_later(session: Session, item_id: int, error: str, not_before: datetime, now: datetime) -> bool:
    """An item whose attempt failed and may be tried again goes back to the table with its
    time: a later claim takes it then, and nothing waits in the workflow meanwhile (R19)."""
    statement = (
        update(JobItem)
        .where(JobItem.id == item_id, JobItem.status == ACTIVE)
        .values(status=WAITING, claim_token=None, not_before=not_before, error=error, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(changed_rows(session.execute(statement)))


def open_items(session: Session, job_id: int) -> int:
    """Items not finished (waiting, or active under a claim)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(JobItem)
            .where(JobItem.job_id == job_id, JobItem.status.in_([WAITING, ACTIVE]))
        )
        or 0
    )


@dataclass(frozen=True, slots=True)
class ItemAttempt:
    job_id: int
    seq: int
    data: dict[str, Any]
    attempts: int  # this attempt's number


def item_for_attempt(session: Session, item_id: int, attempt: int | None, now: datetime) -> ItemAttempt | None:
    """The item as this attempt runs it (one statement: the attempt counted, the item
    read back), or None when the item has finished. `attempt` None: the one after the
    item's last (a batch does not know how often a crashed run of it got to the item)."""
    counted = JobItem.attempts + 1 if attempt is None else attempt
    row = session.execute(
        update(JobItem)
        .where(JobItem.id == item_id, JobItem.status == ACTIVE)
        .values(attempts=counted, updated_at=now)
        .returning(JobItem.job_id, JobItem.seq, JobItem.data, JobItem.attempts)
    ).first()
    return ItemAttempt(row[0], row[1], row[2], row[3]) if row is not None else None


def job_identity(session: Session, job_id: int) -> tuple[str, str, str | None]:
    """(job id, queue, name) of a job: what never changes, so callers may keep it."""
    row = session.execute(select(Job.job_key, Job.queue, Job.name).where(Job.id == job_id)).one()
    return row[0], row[1], row[2]


def finish_item(
    session: Session, item_id: int, status: str, now: datetime, *, result: Any = None, error: str | None = None
) -> bool:
    return bool(
        changed_rows(
            session.execute(
                update(JobItem)
                .where(JobItem.id == item_id, JobItem.status == ACTIVE)
                .values(status=status, result=result, error=error, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
    )


def note_item_error(session: Session, item_id: int, error: str, now: datetime) -> None:
    session.execute(
        update(JobItem)
        .where(JobItem.id == item_id)
        .values(error=error, updated_at=now)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class ItemCounts:
    waiting: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def pending(self) -> int:
        return self.waiting + self.active


def item_counts(session: Session, job_id: int) -> ItemCounts:
    rows = session.execute(
        select(JobItem.status, func.count()).where(JobItem.job_id == job_id).group_by(JobItem.status)
    ).all()
    counts = {status: int(count) for status, count in rows}
    return ItemCounts(counts.get(WAITING, 0), counts.get(ACTIVE, 0), counts.get(COMPLETED, 0), counts.get(FAILED, 0))
