"""Human labels for moments, in a named time zone, for the Temporal Web UI.

Workflows cannot convert time zones (ZoneInfo is restricted in the sandbox), so the
activities that compute a moment also label it and hand the label to the workflow.
"""

from __future__ import annotations

from datetime import datetime

from domain.calendar import zone


def local_label(moment: datetime, timezone: str | None) -> str:
    """`2026-12-01 09:00 America/New_York`: what a sales-ops person reads in the UI.

    The IANA name rather than an abbreviation (EST/EDT) says which calendar the
    campaign's days follow; an unknown or missing zone is labelled in UTC."""
    tz = zone(timezone)
    return f"{moment.astimezone(tz).strftime('%Y-%m-%d %H:%M')} {tz.key}"
