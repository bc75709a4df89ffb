"""Dead letters of jobs: a job that failed for good waits here for an operator, beside the
campaigns' letters (`outbound dlq list / show / retry / discard` handle both)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.dead_letters import OPEN_LETTERS
from db.engine import changed_rows
from db.models import DeadLetter, Job
from schemas.dead_letter_io import DeadLetterStatus


@dataclass(frozen=True, slots=True)
class JobLetter:
    id: int
    job_id: int
    queue: str
    job_key: str
    job_status: str
    error_type: str
    error: str
    attempts: int
    retry_state: str | None
    status: str
    created_at: datetime
    resolved_at: datetime | None


def write_job_letter(
    session: Session, job_id: int, error_type: str, error: str, attempts: int, retry_state: str | None, now: datetime
) -> int:
    letter = DeadLetter(
        job_id=job_id,
        error_type=error_type[:100],
        error=error,
        attempts=attempts,
        retry_state=retry_state,
        status=DeadLetterStatus.OPEN.value,
        created_at=now,
    )
    session.add(letter)
    session.flush()
    return letter.id


_LETTERS = select(
    DeadLetter.id,
    DeadLetter.job_id,
    Job.queue,
    Job.job_key,
    Job.status,
    DeadLetter.error_type,
    DeadLetter.error,
    DeadLetter.attempts,
    DeadLetter.retry_state,
    DeadLetter.status,
    DeadLetter.created_at,
    DeadLetter.resolved_at,
).join(Job, Job.id == DeadLetter.job_id)


def list_job_letters(session: Session, *, include_closed: bool = False, limit: int = 100) -> list[JobLetter]:
    query = _LETTERS
    if not include_closed:
        query = query.where(DeadLetter.status.in_(OPEN_LETTERS))
    return [_letter(tuple(row)) for row in session.execute(query.order_by(DeadLetter.id.desc()).limit(limit))]


def job_letter(session: Session, dead_letter_id: int) -> JobLetter | None:
    row = session.execute(_LETTERS.where(DeadLetter.id == dead_letter_id)).one_or_none()
    return _letter(tuple(row)) if row is not None else None


def _letter(values: tuple[Any, ...]) -> JobLetter:
    return JobLetter(*values)


def close_job_letters(session: Session, job_id: int, status: DeadLetterStatus, now: datetime) -> int:
    """Close the job's open letters: `resolved` when it runs again, `discarded` by hand."""
    return changed_rows(
        session.execute(
            update(DeadLetter)
            .where(DeadLetter.job_id == job_id, DeadLetter.status == DeadLetterStatus.OPEN.value)
            .values(status=status.value, resolved_at=now)
            .execution_options(synchronize_session=False)
        )
    )
