"""What PostgreSQL sessions of the benchmark database are doing, sampled twice a second.

A histogram of `pg_stat_activity` (state and wait event) separates a worker that waits
on row locks or commits (`Lock:transactionid`, `IO:WALSync`) from one that keeps
transactions open while it does something else (`idle in transaction`).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

_QUERY = text(
    """
    SELECT state, coalesce(wait_event_type || ':' || wait_event, 'running') AS waiting, count(*)
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
    GROUP BY 1, 2
    """
)


@dataclass
class PgWaitSampler:
    url: str
    interval: float = 0.5
    samples: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _engine: Engine | None = None

    @property
    def enabled(self) -> bool:
        return make_url(self.url).get_backend_name() == "postgresql"

    def start(self) -> None:
        if not self.enabled:
            return
        self._engine = create_engine(self.url, pool_size=1)
        self._thread = threading.Thread(target=self._run, name="pg-waits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        assert self._engine is not None
        with self._engine.connect() as connection:
            while not self._stop.is_set():
                for state, waiting, count in connection.execute(_QUERY):
                    label = f"{state}: {waiting}" if state == "active" else str(state)
                    self.counts[label] += count
                self.samples += 1
                connection.rollback()
                self._stop.wait(self.interval)

    def summary(self) -> dict[str, float]:
        """Mean number of sessions in each state/wait, most frequent first."""
        if not self.samples:
            return {}
        return {label: round(count / self.samples, 2) for label, count in self.counts.most_common(12)}
