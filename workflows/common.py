"""Small pieces both workflows use."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from schemas.workflow_io import Tuning

ACTIVITY_TIMEOUT = timedelta(seconds=60)


def history_is_long(tuning: Tuning) -> bool:
    """Time to continue-as-new: at the configured length or when the server suggests it."""
    info = workflow.info()
    return info.get_current_history_length() >= tuning.history_threshold or info.is_continue_as_new_suggested()


def seconds_until(moment: datetime) -> float:
    return (moment - workflow.now()).total_seconds()


def local_label(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
