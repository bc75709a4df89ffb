"""A worker killed (`kill -9`) in the middle of its sends: a message is never sent twice,
none is lost, and the sends it had in flight are taken up again within 35 s (its
heartbeats stop; nobody waits out a start-to-close timeout), whether each message has its
own activity or shares a batch of twenty. Real `outbound worker` processes, a Temporal dev
server and PostgreSQL.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.e2e_support import Deployment, TemporalServer, WorkerProcess, eventually, one_email_campaign

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]
CONTACTS = 6
SEND_SECONDS = 1.0  # each provider call takes this long: a kill lands inside one


@pytest.fixture
def deployment(temporal_server: TemporalServer, database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(temporal_server, database_url, tmp_path)
    yield deployment
    deployment.stop_worker()


def rows_by_status(database_url: str) -> dict[str, set[int]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, status FROM step_executions")).all()
    finally:
        engine.dispose()
    found: dict[str, set[int]] = {}
    for execution_id, status in rows:
        found.setdefault(str(status), set()).add(int(execution_id))
    return found


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("batch_size", "heartbeat_seconds", "taken_up_within"),
    # A batch with the default heartbeat timeout (20 s: taken up within 35 s); a message per
    # activity with a short one (5 s), which the wait follows: about 10 s on a quiet machine,
    # 19 s with both cores kept busy by other processes, which the bound allows for (the
    # replacement worker starts after the kill, and its start-up is slower then too).
    [(20, None, 35.0), (1, 5, 25.0)],
    ids=["batches-of-20", "one-per-activity"],
)
def test_a_worker_killed_mid_send_loses_nothing_sends_nothing_twice_and_is_taken_over_quickly(
    deployment: Deployment, batch_size: int, heartbeat_seconds: int | None, taken_up_within: float
) -> None:
    campaign = one_email_campaign(deployment, CONTACTS)
    settings = {
        "OUTBOUND_LOG_FORMAT": "json",
        "OUTBOUND_SEND_BATCH_SIZE": str(batch_size),
        **({"OUTBOUND_SEND_HEARTBEAT_SECONDS": str(heartbeat_seconds)} if heartbeat_seconds else {}),
        "OUTBOUND_MAX_CONCURRENT_ACTIVITIES": "1",  # one message at a time: the kill finds one in flight
        "OUTBOUND_OUTBOX_FAULTS__SEND_DELAY_SECONDS": str(SEND_SECONDS),
    }
    deployment.extra_env.update(settings)  # read by `campaign launch` (batch size, heartbeat) and the workers
    first = WorkerProcess(deployment, "worker-1", **settings)
    first.wait_polling()
    deployment.ok("campaign", "launch", str(campaign))
    eventually(lambda: len(rows_by_status(deployment.database_url).get("SENT", ())) >= 3, what="three sends")
    time.sleep(SEND_SECONDS / 2)  # inside the fourth provider call

    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    killed_at = time.monotonic()
    at_kill = rows_by_status(deployment.database_url)
    sent_before, in_flight = at_kill.get("SENT", set()), at_kill.get("SENDING", set())
    assert in_flight, f"the kill should find a send in flight: {at_kill}"

    second = WorkerProcess(deployment, "worker-2", **settings)
    eventually(
        lambda: in_flight <= rows_by_status(deployment.database_url).get("SENT", set()),
        timeout=taken_up_within + 30,
        what="the sends in flight at the kill to be sent",
    )
    taken_up_after = time.monotonic() - killed_at
    deployment.wait_for(
        campaign,
        lambda report: report["status"] == "COMPLETED" and report["workflow_status"] not in (None, "RUNNING"),
        "the campaign to complete",
    )
    assert second.stop() == 0

    # Taken up by the next worker once the killed one's heartbeats stopped, well before
    # any start-to-close timeout (a minute per message) would have let it.
    assert taken_up_after <= taken_up_within, f"in-flight sends taken up after {taken_up_after:.1f} s"
    # Nothing lost, nothing twice: one message per contact, every row SENT; what was sent
    # before the kill was not sent again.
    assert rows_by_status(deployment.database_url).keys() == {"SENT"}
    recipients = deployment.email_recipients()
    assert len(recipients) == len(set(recipients)) == CONTACTS
    assert not sent_before & set(second.sent_execution_ids())
    expected = "send_batch" if batch_size > 1 else "send_message"
    assert activity_types(first) | activity_types(second) == {expected}


def activity_types(worker: WorkerProcess) -> set[str]:
    """The send activities a worker's JSON log shows at work."""
    found = set()
    for line in worker.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"outcome"' in line:
            found.add(json.loads(line).get("activity_type"))
    return found
