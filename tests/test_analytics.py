"""Analytics buckets on SQLite and PostgreSQL: the right numbers for a hand-built campaign,
hour and day buckets that agree, idempotent re-runs, stale buckets removed, aggregates
kept after the details are purged, and `AnalyticsWorkflow` filling the table."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from db.analytics import aggregate, refresh_campaign
from db.analytics_funnel import campaign_funnel
from db.engine import unit_of_work
from db.models import CampaignStepStats, StepExecution
from runtime.names import campaign_queue
from schemas.analytics_io import AggregateAnalyticsResult, AnalyticsRunInput
from tests.analytics_support import AFTER, COUNTERS, D2, D3, EXPECTED_DAYS, Built, at, build_campaign
from tests.conftest import Database
from tests.support import Outbound, save_history

pytestmark = pytest.mark.timeout(60)


def stats(db: Database, period: str) -> dict[tuple[int, datetime], dict[str, Any]]:
    """(step id, bucket) -> every stored column but the keys."""
    with db.sessions() as session:
        rows = session.scalars(select(CampaignStepStats).where(CampaignStepStats.period == period)).all()
        return {
            (row.step_id, row.bucket_start): {name: getattr(row, name) for name in (*COUNTERS, "skipped_by_reason")}
            | {"computed_at": row.computed_at}
            for row in rows
        }


def expected(built: Built) -> dict[tuple[int, datetime], dict[str, Any]]:
    blank = dict.fromkeys(COUNTERS, 0) | {"skipped_by_reason": {}}
    return {(built.steps[position], day): blank | counts for (position, day), counts in EXPECTED_DAYS.items()}


def counters_only(rows: dict[tuple[int, datetime], dict[str, Any]]) -> dict[tuple[int, datetime], dict[str, Any]]:
    return {key: {k: v for k, v in value.items() if k != "computed_at"} for key, value in rows.items()}


def test_day_buckets_count_every_state_and_response_once(db: Database) -> None:
    built = build_campaign(db.sessions)
    with unit_of_work(db.sessions) as session:
        counts = refresh_campaign(session, built.campaign_id, AFTER)
    assert counts.campaigns == 1
    assert counters_only(stats(db, "day")) == expected(built)
    with db.sessions() as session:
        funnel = campaign_funnel(session, built.campaign_id)
    assert funnel is not None
    first, second = funnel.steps
    assert (first.scheduled, first.sent, first.skipped_by_reason, first.failed) == (7, 5, {"suppressed": 1}, 1)
    assert (first.replied, first.bounced, first.unsubscribed, first.reply_rate) == (2, 1, 1, 2 / 5)
    assert (second.sent, second.replied, second.cancelled, second.reply_rate) == (1, 1, 1, 1.0)
    assert second.skipped_by_reason == {"bounced": 1, "replied": 1, "unsubscribed": 1}
    assert funnel.enrolled == 7
    assert [(row.day.isoformat(), row.channel, row.sent) for row in funnel.sends_per_day] == [
        ("2026-11-02", "email", 4),
        ("2026-11-03", "email", 1),
        ("2026-11-03", "sms", 1),
    ]


def test_hour_buckets_split_the_days_and_add_up_to_them(db: Database) -> None:
    built = build_campaign(db.sessions)
    with unit_of_work(db.sessions) as session:
        refresh_campaign(session, built.campaign_id, AFTER)
    hours = stats(db, "hour")
    email = built.steps[1]
    assert hours[(email, at(D2 - timedelta(days=1), 9))]["sent"] == 3  # 09:01, 09:02, 09:10
    assert hours[(email, at(D2 - timedelta(days=1), 10))]["sent"] == 1
    assert hours[(email, at(D2, 9))] | {"computed_at": None} == {
        **dict.fromkeys(COUNTERS, 0),
        "sent": 1,
        "bounced": 1,
        "skipped_by_reason": {},
        "computed_at": None,
    }
    summed: dict[tuple[int, datetime], dict[str, int]] = {}
    for (step, start), row in hours.items():
        day = summed.setdefault((step, start.replace(hour=0)), dict.fromkeys(COUNTERS, 0))
        for name in COUNTERS:
            day[name] += row[name]
    assert summed == {key: {name: value[name] for name in COUNTERS} for key, value in expected(built).items()}


def test_a_rerun_writes_identical_rows_and_a_moved_row_leaves_no_stale_bucket(db: Database) -> None:
    built = build_campaign(db.sessions)
    for _ in range(2):
        with unit_of_work(db.sessions) as session:
            refresh_campaign(session, built.campaign_id, AFTER)
    first = stats(db, "day"), stats(db, "hour")
    with unit_of_work(db.sessions) as session:
        refresh_campaign(session, built.campaign_id, AFTER)
    assert (stats(db, "day"), stats(db, "hour")) == first  # nothing added up twice
    with unit_of_work(db.sessions) as session:  # re-slot the only row planned for day 3 to day 4
        session.execute(
            update(StepExecution)
            .where(StepExecution.id == built.executions[(2, 2)])
            .values(scheduled_for=at(D3 + timedelta(days=1), 10))
        )
    with unit_of_work(db.sessions) as session:
        counts = refresh_campaign(session, built.campaign_id, AFTER + timedelta(hours=1))
    days = stats(db, "day")
    assert (built.steps[2], D3) not in days
    assert days[(built.steps[2], D3 + timedelta(days=1))]["scheduled"] == 1
    assert counts.removed == 2  # the day-3 day bucket and its 10:00 hour bucket


def test_the_periodic_run_recomputes_touched_campaigns_and_keeps_purged_history(db: Database) -> None:
    built = build_campaign(db.sessions)
    with unit_of_work(db.sessions) as session:
        since, counts = aggregate(session, "day", AFTER, 2)
    assert since == D2 - timedelta(days=2)
    assert counts.campaigns == 1
    assert counters_only({k: v for k, v in stats(db, "day").items()}) == expected(built)
    kept = stats(db, "day")
    with unit_of_work(db.sessions) as session:  # retention purges the details
        session.execute(delete(StepExecution).where(StepExecution.campaign_id == built.campaign_id))
    with unit_of_work(db.sessions) as session:
        aggregate(session, "day", AFTER + timedelta(days=1), 2)
        refresh_campaign(session, built.campaign_id, AFTER + timedelta(days=1))
    assert stats(db, "day") == kept


async def test_analytics_workflow_fills_the_buckets(outbound: Outbound, db: Database) -> None:
    built = build_campaign(db.sessions)
    async with outbound.worker():
        handle = await outbound.client.start_workflow(
            "AnalyticsWorkflow",
            {"period": "day"},  # what the schedule starts it with
            id=f"{outbound.prefix}analytics-{uuid.uuid4().hex[:6]}",
            task_queue=campaign_queue(outbound.prefix),
            result_type=AggregateAnalyticsResult,
        )
        result = await handle.result()
    if db.dialect == "sqlite":
        await save_history(handle, "analytics_day")
    assert result.period == "day"
    assert result.campaigns >= 1
    assert result.buckets_written >= len(EXPECTED_DAYS)
    assert counters_only(stats(db, "day")) == expected(built)
    assert (result.since.hour, result.since.minute) == (0, 0)  # a day bucket, two before "now"
    assert AnalyticsRunInput.model_validate({"period": "hour"}).lookback_buckets == 2
