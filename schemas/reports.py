"""What `outbound campaign status` reports (also its `--json` contract)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StepReport(BaseModel):
    position: int
    channel: str
    start_at: datetime | None
    finished: bool
    scheduled: int = 0  # waiting for their slot (SCHEDULED or QUEUED)
    sending: int = 0
    sent: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    failed: int = 0
    cancelled: int = 0
    not_planned: int = 0  # enrolled contacts without a row yet (their previous step is open)


class CampaignReport(BaseModel):
    campaign_id: int
    name: str
    status: str
    lifecycle_version: int
    workflow_status: str | None = None
    enrolled: int
    launched_at: datetime | None
    finished_at: datetime | None
    dead_letters: int = 0
    steps: list[StepReport]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "sent": sum(step.sent for step in self.steps),
            "scheduled": sum(step.scheduled for step in self.steps),
            "failed": sum(step.failed for step in self.steps),
            "skipped": sum(sum(step.skipped.values()) for step in self.steps),
            "cancelled": sum(step.cancelled for step in self.steps),
        }
