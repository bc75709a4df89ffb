"""How the CLI's tables show values: as plain text, and times as UTC to the second."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text


def cells(*values: object) -> list[Text]:
    """Table cells as plain text: contact and job data must never be read as Rich markup."""
    return [Text("" if value is None else str(value)) for value in values]


def utc_time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"
