"""What a workflow started by a Temporal Schedule needs to know about its run.

Schedule-started workflows take "now" from the scheduled start time, not the actual
start (DESIGN R16): a run that starts late after downtime, or a manual `temporal schedule
trigger`, still works on the day it was meant for, and a repeated run computes the same.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributeKey

SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


def scheduled_start() -> datetime:
    """The time this run was scheduled for; `workflow.now()` when not started by a schedule."""
    moment = workflow.info().typed_search_attributes.get(SCHEDULED_START_TIME)
    return moment if moment is not None else workflow.now()
