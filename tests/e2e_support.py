"""Building blocks for end-to-end tests: the real `outbound` and `temporal` executables as
subprocesses, a Temporal dev server, a worker process, and what the outbox holds.

Everything goes through a process boundary the way a user or an operator would; the
only product code used in-process is `starter.devserver`, which starts the dev server.
"""

from __future__ import annotations

import csv
import email
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from sqlalchemy import create_engine, text

from starter.devserver import DevServerExited, start_dev_server, stop
from tests.support import POSTAL_ADDRESS, TEST_SECRET_KEY

BIN = Path(sys.executable).parent
OUTBOUND = BIN / "outbound"
TEMPORAL = BIN / "temporal"
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

COMMAND_TIMEOUT = 60.0
POLL_TIMEOUT = 60.0
POLL_INTERVAL = 0.5
GRACEFUL_EXIT_SECONDS = 35.0

# The senders examples/demo-campaign.yaml names.
SENDERS = (("email", "sales@outbound.example"), ("sms", "+15005550006"), ("voicemail", "+15005550006"))

Report = dict[str, Any]
T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without any `OUTBOUND_*` setting, plus `overrides`.

    A developer's own settings (say `OUTBOUND_OUTBOX_FAULTS__...`) must not leak into a test.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("OUTBOUND_")}
    env.update(COLUMNS="200", NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


def eventually(check: Callable[[], T | None], *, what: str, timeout: float = POLL_TIMEOUT) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def describe(done: subprocess.CompletedProcess[str]) -> str:
    return f"`{' '.join(map(str, done.args))}` exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


@dataclass(frozen=True)
class ExampleContacts:
    """The distinct contacts of `examples/leads-*.csv` (emails are case-insensitive)."""

    emails: frozenset[str]
    with_phone: frozenset[str]

    @classmethod
    def load(cls) -> ExampleContacts:
        phones: dict[str, bool] = {}
        for path in sorted(EXAMPLES.glob("leads-*.csv")):
            with path.open(newline="", encoding="utf-8") as handle:
                rows = csv.reader(handle)
                next(rows)  # header: email, phone, ... in both files (spelled differently)
                for row in rows:
                    address = row[0].strip().lower()
                    phones[address] = phones.get(address, False) or bool(row[1].strip())
        return cls(frozenset(phones), frozenset(address for address, has in phones.items() if has))


@dataclass
class TemporalServer:
    """A `temporal server start-dev` process, driven with the `temporal` CLI."""

    process: subprocess.Popen[bytes]
    port: int
    ui_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def temporal(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `temporal <args> --address <this server>`; fails the test on a non-zero exit."""
        done = subprocess.run(
            [str(TEMPORAL), *args, "--address", self.address],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, describe(done)
        return done

    def workflow_ids(self, query: str) -> set[str]:
        """Ids of the workflows `temporal workflow list --query <query>` finds."""
        listed = self.temporal("workflow", "list", "--query", query, "--output", "json")
        text = listed.stdout.strip()
        executions = json.loads(text) if text else []
        if isinstance(executions, dict):  # one result may come as a bare object
            executions = [executions]
        return {execution["execution"]["workflowId"] for execution in executions}

    def wait_until_listed(self, workflow_id: str, query: str) -> None:
        """Visibility lags a little behind the workflow: list until the query finds it."""
        eventually(lambda: workflow_id in self.workflow_ids(query), what=f"{workflow_id} to match {query}", timeout=15)


@dataclass
class Deployment:
    """One isolated Outbound deployment: its own database, outbox and task queue prefix,
    on a Temporal server shared with other tests."""

    server: TemporalServer
    database_url: str
    home: Path
    prefix: str = field(default_factory=lambda: f"e2e{uuid.uuid4().hex[:8]}-")
    worker_process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. OUTBOUND_JOBS_FILE

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def worker_log(self) -> Path:
        return self.home / "worker.log"

    @property
    def env(self) -> dict[str, str]:
        return clean_environment(
            OUTBOUND_DATABASE_URL=self.database_url,
            OUTBOUND_SECRET_KEY=TEST_SECRET_KEY,
            OUTBOUND_TEMPORAL_ADDRESS=self.server.address,
            OUTBOUND_OUTBOX_DIR=str(self.outbox),
            OUTBOUND_TASK_QUEUE_PREFIX=self.prefix,
            **self.extra_env,
        )

    def workflow_id(self, campaign_id: int) -> str:
        return f"{self.prefix}campaign-{campaign_id}"

    # --- the CLI -----------------------------------------------------------------------

    def outbound(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `outbound <args>` and return what happened, whatever the exit code."""
        return subprocess.run(
            [str(OUTBOUND), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `outbound <args>`, which must succeed."""
        done = self.outbound(*args)
        assert done.returncode == 0, describe(done) + self.worker_log_tail()
        return done

    def refused(self, *args: str) -> str:
        """Run `outbound <args>`, which must fail as a user error (exit code 2); its stderr."""
        done = self.outbound(*args)
        assert done.returncode == 2, describe(done)
        return " ".join(done.stderr.split())  # rich may wrap long messages

    def load_examples(self) -> None:
        """What the README asks for before the demo campaign: both lead groups, three senders.

        The senders are added while the contacts import (different rows, so this is safe and
        also shows that concurrent CLI writers queue up instead of failing)."""
        senders = [
            self.start("senders", "add", "--channel", channel, "--address", address, "--daily-limit", "200")
            for channel, address in SENDERS
        ]
        self.ok("contacts", "import", str(EXAMPLES / "leads-a.csv"), "--group", "Group A")
        self.ok("contacts", "import", str(EXAMPLES / "leads-b.csv"), "--group", "Group B")
        for process in senders:
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
            done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            assert done.returncode == 0, describe(done)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `outbound <args>` without waiting for it."""
        return subprocess.Popen(
            [str(OUTBOUND), *args],
            env=self.env,
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def create_campaign(self, file: Path) -> int:
        """`outbound campaign create FILE`: the new id is the only thing on stdout."""
        return int(self.ok("campaign", "create", str(file)).stdout.strip())

    def status(self, campaign_id: int) -> Report:
        report: Report = json.loads(self.ok("campaign", "status", str(campaign_id), "--json").stdout)
        return report

    def wait_for(self, campaign_id: int, condition: Callable[[Report], bool], what: str) -> Report:
        """Poll `outbound campaign status --json` until `condition` holds; the report."""
        last: list[Report] = []

        def check() -> Report | None:
            last[:] = [self.status(campaign_id)]
            return last[0] if condition(last[0]) else None

        try:
            return eventually(check, what=what)
        except AssertionError as error:
            raise AssertionError(
                f"{error}; last report:\n{json.dumps(last, indent=1)}{self.worker_log_tail()}"
            ) from None

    # --- the worker --------------------------------------------------------------------

    def start_worker(self) -> None:
        with self.worker_log.open("ab") as log:
            self.worker_process = subprocess.Popen(
                [str(OUTBOUND), "worker"], env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT
            )

    def stop_worker(self) -> int | None:
        """SIGTERM, as a process manager would; the exit code (None: it had to be killed)."""
        process, self.worker_process = self.worker_process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=GRACEFUL_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None

    def worker_log_tail(self, lines: int = 30) -> str:
        if not self.worker_log.exists():
            return ""
        tail = self.worker_log.read_text(errors="replace").splitlines()[-lines:]
        return "\nworker log (tail):\n" + "\n".join(tail)

    # --- the outbox --------------------------------------------------------------------

    def files(self, channel: str) -> list[Path]:
        folder = self.outbox / channel
        return sorted(folder.glob("*.eml" if channel == "email" else "*.json")) if folder.exists() else []

    def wait_for_files(self, channel: str, count: int) -> None:
        """Watch the outbox (much cheaper than polling the CLI) until `count` messages are there."""
        eventually(lambda: len(self.files(channel)) >= count, what=f"{count} {channel} message(s) in the outbox")

    def email_recipients(self) -> list[str]:
        return [str(email.message_from_bytes(path.read_bytes())["To"]).lower() for path in self.files("email")]

    def records(self, channel: str) -> list[dict[str, Any]]:
        """The JSON records the outbox wrote for `sms` or `voicemail`."""
        return [json.loads(path.read_text()) for path in self.files(channel)]


@contextmanager
def dev_server(home: Path) -> Iterator[TemporalServer]:
    """A Temporal dev server on free ports with Outbound's search attributes."""
    for attempt in range(3):
        # Kernel-picked ports can be taken before the server binds them: try fresh ones.
        port, ui_port = free_port(), free_port()
        try:
            process = start_dev_server(home, port=port, ui_port=ui_port)
            break
        except DevServerExited:
            if attempt == 2:
                raise
    try:
        yield TemporalServer(process, port, ui_port)
    finally:
        stop(process)


def written_at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["written_at"]).astimezone(UTC)


SENDER = "sales@outbound.example"
EXIT_TIMEOUT = 40.0


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


def one_email_campaign(deployment: Deployment, contacts: int) -> int:
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
