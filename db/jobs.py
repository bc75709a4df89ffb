"""Job rows (DESIGN J1, J2): enqueue once per (queue, job id), attempts, outcomes, stats.

Each function is one transaction's worth of work on the caller's session. Writes are
conditional on the job's state, so a repeated activity attempt or a late cancel finds the
state already moved and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from db.dialect import dialect_insert
from db.engine import changed_rows
from db.events import record_event
from db.models import DEFAULT_WORKSPACE_ID, Job
from schemas.events import EventType, JobData
from schemas.jobs import JobStatus, JobView

JOBS = cast(Table, Job.__table__)
_UNFINISHED = [JobStatus.WAITING.value, JobStatus.DELAYED.value, JobStatus.ACTIVE.value]


@dataclass(frozen=True, slots=True)
class NewJob:
    queue: str
    job_key: str
    data: dict[str, Any]
    priority: int
    attempts: int
    name: str | None = None
    delay_seconds: float = 0.0
    items: int | None = None  # a bulk job: how many items follow in `job_items`


def enqueue(
    session: Session, job: NewJob, now: datetime, *, workspace_id: int = DEFAULT_WORKSPACE_ID
) -> tuple[int, bool]:
    """The job's row id, and whether this call created it (False: the id was taken, and
    the existing job is the answer: the same job id twice is one job)."""
    delayed = job.delay_seconds > 0
    values = {
        "workspace_id": workspace_id,
        "queue": job.queue,
        "job_key": job.job_key,
        "name": job.name,
        "data": job.data,
        "status": (JobStatus.DELAYED if delayed else JobStatus.WAITING).value,
        "priority": job.priority,
        "attempts_allowed": job.attempts,
        "attempts_made": 0,
        "run_after": now + timedelta(seconds=job.delay_seconds) if delayed else None,
        "items": job.items,
        "created_at": now,
        "updated_at": now,
    }
    statement = dialect_insert(session, Job).values(**values).on_conflict_do_nothing().returning(Job.id)
    created = session.scalar(statement)
    if created is not None:
        return int(created), True
    existing = session.scalar(select(Job.id).where(Job.queue == job.queue, Job.job_key == job.job_key))
    if existing is None:  # pragma: no cover - the conflict was on this very key
        raise RuntimeError(f"job {job.job_key!r} of queue {job.queue!r} neither inserted nor found")
    return int(existing), False


@dataclass(frozen=True, slots=True)
class Attempt:
    """What an attempt hands its handler, read back by the statement that began it."""

    job_key: str
    queue: str
    name: str | None
    data: dict[str, Any]


def begin_attempt(session: Session, job_id: int, attempt: int, now: datetime) -> Attempt | None:
    """The job as this attempt runs it, now ACTIVE with `attempt - 1` attempts made before
    (one statement: moved and read back); None when it was cancelled or has finished."""
    row = session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(_UNFINISHED))
        .values(
            status=JobStatus.ACTIVE.value,
            attempts_made=attempt - 1,
            started_at=func.coalesce(JOBS.c.started_at, now),
            updated_at=now,
        )
        .returning(JOBS.c.job_key, JOBS.c.queue, JOBS.c.name, JOBS.c.data)
    ).first()
    return Attempt(row[0], row[1], row[2], row[3]) if row is not None else None


def complete(session: Session, job_id: int, result: Any, progress: Any, attempt: int, now: datetime) -> bool:
    values: dict[str, Any] = {
        "status": JobStatus.COMPLETED.value,
        "result": result,
        "error": None,
        "attempts_made": attempt,
        "finished_at": now,
        "updated_at": now,
    }
    if progress is not None:
        values["progress"] = progress
    return _finish_with_event(session, job_id, values, now)


def record_failed_attempt(
    session: Session, job_id: int, error: str, progress: Any, attempt: int, now: datetime
) -> None:
    """An attempt failed; the job stays ACTIVE while retries remain (the workflow decides)."""
    values: dict[str, Any] = {"error": error, "attempts_made": attempt, "updated_at": now}
    if progress is not None:
        values["progress"] = progress
    _move(session, job_id, values)


def set_progress(session: Session, job_id: int, progress: Any, now: datetime) -> None:
    _move(session, job_id, {"progress": progress, "updated_at": now})


def finish(session: Session, job_id: int, status: JobStatus, error: str | None, now: datetime) -> bool:
    """FAILED or CANCELLED, once; False when the job had already finished."""
    values: dict[str, Any] = {"status": status.value, "finished_at": now, "updated_at": now}
    if error is not None:
        values["error"] = error
    if status is JobStatus.FAILED:
        return _finish_with_event(session, job_id, values, now)
    return _move(session, job_id, values)


def _finish_with_event(session: Session, job_id: int, values: dict[str, Any], now: datetime) -> bool:
    """A job's end, once, with the event that tells the app (`job.completed`, `job.failed`)
    in the same statement's transaction; the row read back by the statement that moved it."""
    statement = (
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(_UNFINISHED))
        .values(**values)
        .returning(
            JOBS.c.job_key, JOBS.c.queue, JOBS.c.name, JOBS.c.status, JOBS.c.attempts_made, JOBS.c.result,
            JOBS.c.error, JOBS.c["items"], JOBS.c.workspace_id,
        )
    )  # fmt: skip
    row = session.execute(statement).first()
    if row is None:
        return False
    job_key, queue, name, status, attempts_made, result, error, items, workspace_id = row
    kind = EventType.JOB_COMPLETED if status == JobStatus.COMPLETED.value else EventType.JOB_FAILED
    data = JobData(
        job_id=job_key,
        queue=queue,
        name=name,
        status=status,
        attempts_made=attempts_made,
        result=None if items else result,
        error=error,
        items=result if items and isinstance(result, dict) else None,
        at=now,
    )
    record_event(session, kind, data, now, workspace_id)
    return True


def reset_for_retry(session: Session, job_id: int, now: datetime) -> bool:
    """A failed or cancelled job runs again under the same id: its attempts start over."""
    return bool(
        changed_rows(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_([JobStatus.FAILED.value, JobStatus.CANCELLED.value]))
                .values(
                    status=JobStatus.WAITING.value,
                    attempts_made=0,
                    error=None,
                    result=None,
                    run_after=None,
                    started_at=None,
                    finished_at=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        )
    )


def _move(session: Session, job_id: int, values: dict[str, Any]) -> bool:
    """A conditional write on an unfinished job, through the table (the hot path: the ORM's
    bulk-update bookkeeping cost more than the statement)."""
    statement = update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status.in_(_UNFINISHED)).values(**values)
    return bool(changed_rows(session.execute(statement)))


def find_job(session: Session, reference: str, queue: str | None = None) -> Job | None:
    """By row id (`42`), by `queue/job id`, or by job id alone when it names one job."""
    if queue is None and "/" in reference:
        queue, reference = reference.split("/", 1)
    query = select(Job).where(Job.job_key == reference)
    if queue is not None:
        query = query.where(Job.queue == queue)
    found = list(session.scalars(query.limit(2)))
    if len(found) == 1:
        return found[0]
    if not found and queue is None and reference.isdigit():
        return session.get(Job, int(reference))
    if len(found) > 1:
        raise LookupError(f"job id {reference!r} is used in several queues: name it as QUEUE/{reference}")
    return None


def list_jobs(
    session: Session, queue: str | None = None, status: JobStatus | None = None, limit: int = 50
) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if queue is not None:
        query = query.where(Job.queue == queue)
    if status is not None:
        query = query.where(Job.status == status.value)
    return list(session.scalars(query))


def queue_counts(session: Session, queues: Sequence[str] = ()) -> dict[str, dict[str, int]]:
    """Jobs per queue and status, in one grouped query (DESIGN J6): every status, zeros
    included, for `queues` (in that order) and for any other queue that has jobs."""
    found: dict[str, dict[str, int]] = {}
    for queue, status, count in session.execute(
        select(Job.queue, Job.status, func.count()).group_by(Job.queue, Job.status)
    ):
        found.setdefault(queue, {})[status] = int(count)
    names = [*queues, *sorted(set(found) - set(queues))]
    return {name: {state.value: found.get(name, {}).get(state.value, 0) for state in JobStatus} for name in names}


def view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        queue=job.queue,
        job_key=job.job_key,
        name=job.name,
        status=JobStatus(job.status),
        priority=job.priority,
        attempts_allowed=job.attempts_allowed,
        attempts_made=job.attempts_made,
        data=job.data,
        progress=job.progress,
        result=job.result,
        error=job.error,
        run_after=job.run_after,
        items=job.items,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
