"""What `outbound campaign report` shows: the funnel per step and sends per day (also its
`--json` contract). Counts only, read from the analytics buckets."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field, computed_field


class FunnelStep(BaseModel):
    position: int
    channel: str
    scheduled: int = 0
    sent: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = Field(default_factory=dict)
    failed: int = 0
    cancelled: int = 0
    replied: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    replies_by_intent: dict[str, int] = Field(
        default_factory=dict, description="Replies to this step's messages by intent (interested, referral, …)."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reply_rate(self) -> float | None:
        """Replies per message sent by this step; None before anything was sent."""
        return self.replied / self.sent if self.sent else None


class DailySends(BaseModel):
    day: date  # UTC
    channel: str
    sent: int


class CampaignFunnel(BaseModel):
    campaign_id: int
    name: str
    status: str
    enrolled: int
    computed_at: datetime | None  # when the buckets were last recomputed
    steps: list[FunnelStep]
    sends_per_day: list[DailySends] = Field(default_factory=list)

    @property
    def channels(self) -> list[str]:
        return sorted({row.channel for row in self.sends_per_day})
