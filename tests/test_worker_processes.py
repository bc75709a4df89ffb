"""`outbound worker` processes: graceful shutdown with a send in flight, and two workers
sharing one campaign, against a Temporal dev server and PostgreSQL.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_support import (
    OUTBOUND,
    Deployment,
    TemporalServer,
    WorkerProcess,
    clean_environment,
    eventually,
    one_email_campaign,
    statuses,
)

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


@pytest.fixture
def deployment(temporal_server: TemporalServer, database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(temporal_server, database_url, tmp_path)
    yield deployment
    deployment.stop_worker()


@pytest.mark.timeout(150)
def test_sigint_lets_the_send_in_flight_finish_then_exits_0(deployment: Deployment) -> None:
    campaign = one_email_campaign(deployment, 1)
    delay = 4.0
    worker = WorkerProcess(deployment, "worker", OUTBOUND_OUTBOX_FAULTS__SEND_DELAY_SECONDS=str(delay))
    worker.wait_polling()
    deployment.ok("campaign", "launch", str(campaign))
    eventually(lambda: statuses(deployment.database_url).get("SENDING"), what="the send to be in flight")

    interrupted = time.monotonic()
    assert worker.stop(signal.SIGINT) == 0, worker.log.read_text()[-3000:]
    waited = time.monotonic() - interrupted

    # It waited for the provider call and recorded SENT before leaving: nothing is left for a retry.
    assert statuses(deployment.database_url) == {"SENT": 1}
    assert len(deployment.files("email")) == 1
    assert waited > 0.5, "the worker left without waiting for the running send"
    log = worker.log.read_text()
    assert "SIGINT: stopped polling" in log
    assert "worker stopped" in log


@pytest.mark.timeout(200)
def test_two_worker_processes_share_a_campaign_and_send_each_message_once(deployment: Deployment) -> None:
    contacts = 36
    campaign = one_email_campaign(deployment, contacts)
    # Two activity slots per process and a little provider latency, so neither process can
    # drain the queue alone and the work is really shared.
    settings = {
        "OUTBOUND_LOG_FORMAT": "json",
        "OUTBOUND_MAX_CONCURRENT_ACTIVITIES": "2",
        "OUTBOUND_OUTBOX_FAULTS__SEND_DELAY_SECONDS": "0.1",
    }
    workers = [WorkerProcess(deployment, f"worker-{index}", **settings) for index in (1, 2)]
    for worker in workers:
        worker.wait_polling()
    deployment.ok("campaign", "launch", str(campaign))
    deployment.wait_for(
        campaign,
        lambda report: report["status"] == "COMPLETED" and report["workflow_status"] not in (None, "RUNNING"),
        "the campaign to complete",
    )
    assert [worker.stop() for worker in workers] == [0, 0]

    # Every message exactly once: one outbox file and one SENT row per contact.
    assert statuses(deployment.database_url) == {"SENT": contacts}
    recipients = deployment.email_recipients()
    assert len(recipients) == len(set(recipients)) == contacts
    # Both processes sent, and no execution was sent by both.
    first, second = (set(worker.sent_execution_ids()) for worker in workers)
    assert first, "worker-1 sent nothing"
    assert second, "worker-2 sent nothing"
    assert not first & second
    assert len(first | second) == contacts
    for worker in workers:
        assert "@" not in "".join(line for line in worker.log.read_text().splitlines() if '"outcome"' in line)


def test_a_worker_with_an_unknown_trace_exporter_says_so_and_exits(database_url: str) -> None:
    done = subprocess.run(
        [str(OUTBOUND), "worker"],
        env=clean_environment(OTEL_TRACES_EXPORTER="zipkin-typo", OUTBOUND_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "unknown exporter 'zipkin-typo'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
