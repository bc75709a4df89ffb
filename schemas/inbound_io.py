"""Inputs and outputs of the mailbox sync: ids and counts only, never message content."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class MailboxSyncInput(BaseModel):
    sender_id: int
    task_queue_prefix: str = ""
    interval_seconds: float = Field(60.0, gt=0)
    syncs_before_continue_as_new: int = Field(200, ge=1)


class SyncMailboxInput(BaseModel):
    sender_id: int
    now: datetime


class MailboxState(StrEnum):
    SYNCED = "synced"
    DISABLED = "disabled"  # the grant was revoked or the mailbox was disabled: the sync stops
    MISSING = "missing"  # the sender row is gone or is not a Gmail mailbox


class SyncMailboxResult(BaseModel):
    state: MailboxState
    full_resync: bool = False
    fetched: int = 0
    stored: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)
    stopped_contacts: int = 0
    detail: str | None = None
