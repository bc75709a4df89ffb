"""The short texts the Web UI shows: local start labels and the campaign summary line."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.time_labels import local_label
from starter.client import SUMMARY_NAME_LIMIT, campaign_summary


def test_a_start_is_labelled_in_the_campaigns_zone_across_daylight_saving_time() -> None:
    assert (
        local_label(datetime(2026, 7, 1, 13, 0, tzinfo=UTC), "America/New_York") == "2026-07-01 09:00 America/New_York"
    )
    assert (
        local_label(datetime(2026, 12, 1, 14, 0, tzinfo=UTC), "America/New_York") == "2026-12-01 09:00 America/New_York"
    )


def test_an_unknown_or_missing_zone_is_labelled_in_utc() -> None:
    moment = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)
    assert local_label(moment, "Mars/Olympus_Mons") == "2026-12-01 14:05 UTC"
    assert local_label(moment, None) == "2026-12-01 14:05 UTC"


def test_the_campaign_summary_is_one_short_line_with_the_id_and_the_name() -> None:
    assert campaign_summary(7, "Q4 outreach") == "Campaign 7: Q4 outreach"
    assert campaign_summary(7, "  Q4\n  outreach ") == "Campaign 7: Q4 outreach"
    assert campaign_summary(7, None) == campaign_summary(7, "   ") == "Campaign 7"
    long = campaign_summary(7, "x" * 500)
    assert long.endswith("…")
    assert len(long) == len("Campaign 7: ") + SUMMARY_NAME_LIMIT
