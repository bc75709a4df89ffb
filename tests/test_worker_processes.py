"""`outbound worker` processes: graceful shutdown with a send in flight, and two workers
sharing one campaign, against a Temporal dev server and PostgreSQL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.e2e_support import OUTBOUND, Deployment, TemporalServer, clean_environment, eventually
from tests.support import POSTAL_ADDRESS

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]
SENDER = "sales@outbound.example"
EXIT_TIMEOUT = 40.0


@pytest.fixture
def deployment(temporal_server: TemporalServer, database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(temporal_server, database_url, tmp_path)
    yield deployment
    deployment.stop_worker()


class WorkerProcess:
    """One `outbound worker` with its own log file and extra settings."""

    def __init__(self, deployment: Deployment, name: str, **settings: str) -> None:
        self.log = deployment.home / f"{name}.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(OUTBOUND), "worker"],
                env=deployment.env | settings,
                cwd=deployment.home,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_polling(self) -> None:
        eventually(lambda: "worker polling" in self.log.read_text(errors="replace"), what=f"{self.log.name} to poll")

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the worker ignored {signum.name}:\n{self.log.read_text()[-3000:]}") from None

    def sent_execution_ids(self) -> list[int]:
        """Execution ids this process logged as sent (OUTBOUND_LOG_FORMAT=json)."""
        ids = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("outcome") == "sent":
                    ids.append(int(record["execution_id"]))
        return ids


def prepare(deployment: Deployment, contacts: int) -> int:
    """`contacts` leads, one email sender, a one-email campaign that sends at once; its id."""
    leads = deployment.home / "leads.csv"
    rows = [f"lead{index}@example.com,Lead{index}" for index in range(contacts)]
    leads.write_text("email,first_name\n" + "\n".join(rows) + "\n")
    deployment.ok("contacts", "import", str(leads), "--group", "Leads")
    deployment.ok("senders", "add", "--channel", "email", "--address", SENDER, "--daily-limit", "1000")
    spec = {
        "name": "Worker test",
        "timezone": "UTC",
        "lead_groups": ["Leads"],
        "senders": {"email": [SENDER]},
        "window": "always",
        "send_gap": "0s",
        "postal_address": POSTAL_ADDRESS,
        "steps": [{"channel": "email", "subject": "Hi {{ first_name }}", "body": "Hello {{ first_name }}"}],
    }
    path = deployment.home / "campaign.yaml"
    path.write_text(yaml.safe_dump(spec))
    return deployment.create_campaign(path)


def statuses(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT status, count(*) FROM step_executions GROUP BY status")).all()
            return {str(status): int(count) for status, count in rows}
    finally:
        engine.dispose()


@pytest.mark.timeout(150)
def test_sigint_lets_the_send_in_flight_finish_then_exits_0(deployment: Deployment) -> None:
    campaign = prepare(deployment, 1)
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
    campaign = prepare(deployment, contacts)
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
