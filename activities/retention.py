"""The retention activity: purges details past their age in one transaction."""

from __future__ import annotations

from temporalio import activity

from db.engine import SessionFactory, unit_of_work
from db.retention import cutoffs, event_cutoff, purge
from runtime.settings import RetentionSettings
from schemas.retention_io import RetentionCounts, RetentionPurgeInput


class RetentionActivities:
    def __init__(self, sessions: SessionFactory, settings: RetentionSettings) -> None:
        self.sessions = sessions
        self.settings = settings

    @activity.defn
    def purge_expired(self, request: RetentionPurgeInput) -> RetentionCounts:
        inbound_before, errors_before = cutoffs(
            request.now,
            self.settings,
            inbound_body_days=request.inbound_body_days,
            error_days=request.error_payload_days,
        )
        with unit_of_work(self.sessions) as session:
            counts = purge(
                session,
                request.now,
                inbound_before,
                errors_before,
                dry_run=request.dry_run,
                events_before=event_cutoff(request.now, self.settings),
            )
        activity.logger.info(
            "retention%s: %s inbound bodies, %s execution errors, %s dead-letter errors, %s events",
            " (dry run)" if request.dry_run else "",
            counts.inbound_messages,
            counts.executions,
            counts.dead_letters,
            counts.events,
        )
        return counts
