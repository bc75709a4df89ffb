"""Process logging: readable text for people, one JSON object per line for production.

`OUTBOUND_LOG_FORMAT=json` turns every record into JSON carrying the ids a person needs
to find the work in Temporal and in the database: the `workflow_id` / `run_id` (and
activity type, attempt, task queue) that Temporal's activity and workflow loggers put on
`extra`, flattened to top-level keys, plus the `campaign_id`, `step`, `contact_id`,
`execution_id` and `channel` that Outbound's send activity adds. Contact data (addresses,
phone numbers, template variables) is never passed to a logger in the first place.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter
from temporalio import activity, workflow

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Temporal's loggers put these dictionaries on `extra`; their keys become top-level keys.
_TEMPORAL_EXTRAS = ("temporal_activity", "temporal_workflow")
_RENAMED = {"workflow_run_id": "run_id"}


class TemporalIdsFilter(logging.Filter):
    """Flattens Temporal's `temporal_activity` / `temporal_workflow` extras, so a log
    pipeline can index `workflow_id` without knowing the SDK's nesting."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        for name in _TEMPORAL_EXTRAS:
            details = fields.pop(name, None)
            if isinstance(details, dict):
                for key, value in details.items():
                    fields.setdefault(_RENAMED.get(str(key), str(key)), value)
        return True


def json_formatter() -> logging.Formatter:
    formatter: logging.Formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )
    return formatter


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """Set up the root logger of a long-running process (`outbound worker`, `outbound api`).

    In JSON mode Temporal's loggers stop appending their info dictionary to the message
    text (it is in the keys instead)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(json_formatter())
        handler.addFilter(TemporalIdsFilter())
        _quiet_temporal_message_suffix()
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)


def _quiet_temporal_message_suffix() -> None:
    adapters: list[Any] = [activity.logger, workflow.logger]
    for adapter in adapters:
        for flag in ("activity_info_on_message", "workflow_info_on_message"):
            if hasattr(adapter, flag):
                setattr(adapter, flag, False)
