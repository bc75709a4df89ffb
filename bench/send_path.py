"""Worker CPU per send, without Temporal: the send activity called in a loop.

The campaign benchmark shows the end-to-end ratio; this one isolates the part the worker
process pays for each message (context load, gate, quota claim, render, outbox write,
SENT), so a change to the send path can be measured in seconds:

    uv run python -m bench.send_path --contacts 2000 --database-url postgresql
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from activities.campaign import CampaignActivities
from activities.message_links import MessageLinks
from activities.sending import SendActivities
from bench.database import fresh_database, seed
from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.models import Step, StepExecution
from db.planning import plan_step
from providers.outbox import OutboxProvider
from schemas.activity_io import PrepareCampaignInput, SendInput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--database-url", default="postgresql", help="postgresql, sqlite or a SQLAlchemy URL")
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--profile", action="store_true", help="print the top functions by cumulative time")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as scratch,
        fresh_database(args.database_url, args.admin_url, Path(scratch), "sendpath", keep=False) as url,
    ):
        engine = make_engine(url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        seeded = seed(sessions, args.contacts, "1s")
        now = datetime.now(UTC)
        CampaignActivities(sessions).prepare_campaign(
            PrepareCampaignInput(campaign_id=seeded.campaign_id, now=now, start_at=now, version=1)
        )
        with unit_of_work(sessions) as session:
            step_id = session.scalars(
                select(Step.id).where(Step.campaign_id == seeded.campaign_id, Step.position == 1)
            ).one()
            plan_step(session, step_id, now)
            ids = list(session.scalars(select(StepExecution.id).where(StepExecution.step_id == step_id)))
        # Every email carries a signed unsubscribe link, so the bench needs a key of its own.
        links = MessageLinks("http://localhost:8080", os.urandom(32), 90)
        sender = SendActivities(sessions, {"outbox": OutboxProvider(Path(scratch) / "outbox")}, links)
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall, times = time.process_time(), time.perf_counter(), os.times()
        if profiler:
            profiler.enable()
        outcomes: dict[str, int] = {}
        for execution_id in ids:
            result = sender.send_message(SendInput(execution_id=execution_id, now=datetime.now(UTC)))
            outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        user, system = os.times().user - times.user, os.times().system - times.system
        engine.dispose()
        print(f"{len(ids)} sends on {args.database_url}: {outcomes}")
        print(
            f"worker CPU per send {1000 * cpu / len(ids):.2f} ms"
            f" (user {1000 * user / len(ids):.2f}, system {1000 * system / len(ids):.2f}),"
            f" wall per send {1000 * wall / len(ids):.2f} ms"
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
