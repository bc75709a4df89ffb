"""A job's retry backoff, as the seeds' BullMQ queues had it: 2 s, doubling, at most 5 minutes.

One definition for the two places that wait: the job workflow's retry policy (Temporal
waits) and a bulk job's batches (an item waits in the table for its next attempt).
"""

from __future__ import annotations

from datetime import timedelta

BACKOFF_FIRST = timedelta(seconds=2)
BACKOFF_MOST = timedelta(minutes=5)


def backoff_after(attempts_made: int) -> timedelta:
    """The wait before the next attempt once `attempts_made` attempts have failed."""
    return min(BACKOFF_FIRST * (1 << max(attempts_made - 1, 0)), BACKOFF_MOST)
