"""The processes a benchmark run starts and watches: the Temporal dev server and workers.

Workers run as separate processes (as in production) so their memory and CPU can be
measured apart from the benchmark itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

REPO = Path(__file__).resolve().parent.parent
# What the wheel ships (one list, in pyproject.toml: prompts and handlers included), and the benches.
_WHEEL = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
PACKAGES = (*_WHEEL["packages"], "bench")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def snapshot_code(into: Path) -> str:
    """Copy the project's packages into `into`, check they import, and return their digest.

    Workers run from the copy (it comes first on PYTHONPATH), so a run measures one
    version of the code even while the work tree is being edited: the workflow sandbox
    re-reads workflow modules for every new run, continue-as-new included.
    """
    for name in PACKAGES:
        shutil.copytree(REPO / name, into / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
    digest = hashlib.sha256()
    for path in sorted(into.rglob("*.py")):
        digest.update(path.relative_to(into).as_posix().encode())
        digest.update(path.read_bytes())
    check = subprocess.run(
        [sys.executable, "-c", "import starter.cli, workers.run, bench.trivial"],
        cwd=into,
        env={**os.environ, "PYTHONPATH": str(into)},
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode:
        raise RuntimeError(f"the code copied from {REPO} does not import:\n{check.stderr[-2000:]}")
    return digest.hexdigest()[:16]


def outbound_command() -> list[str]:
    """`outbound worker`, from this virtualenv's console script."""
    script = Path(sys.executable).with_name("outbound")
    return [str(script), "worker"] if script.exists() else [sys.executable, "-m", "starter.cli", "worker"]


def trivial_command() -> list[str]:
    return [sys.executable, "-m", "bench.trivial"]


def start_process(command: list[str], env: Mapping[str, str], log: Path, code: Path) -> subprocess.Popen[bytes]:
    """Start a worker running the code in `code` (see `snapshot_code`)."""
    output = log.open("ab")
    return subprocess.Popen(
        command,
        cwd=code,
        env={**os.environ, **env, "PYTHONPATH": str(code)},
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM (the worker drains gracefully), then SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


async def wait_for_pollers(
    client: Client, queue: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90
) -> None:
    """Until the server sees a worker polling `queue` (the worker is connected and ready)."""
    deadline = time.monotonic() + timeout
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with code {process.returncode}; see {log}")
        described = await client.workflow_service.describe_task_queue(request)
        if described.pollers:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"no worker polled {queue} within {timeout:.0f} s; see {log}")


def _cpu(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


@dataclass
class CpuMeter:
    """CPU seconds used between `start()` and `stop()` by fixed processes or, with
    `name_prefix`, by every process of that name, including those started in between
    (PostgreSQL starts a backend per new connection)."""

    processes: list[psutil.Process] = field(default_factory=list)
    name_prefix: str | None = None
    _before: dict[int, float] = field(default_factory=dict)

    def _current(self) -> dict[int, float]:
        found = self.processes
        if self.name_prefix is not None:
            found = [
                p for p in psutil.process_iter(["name"]) if (p.info.get("name") or "").startswith(self.name_prefix)
            ]
        return {process.pid: cpu for process in found if (cpu := _cpu(process)) is not None}

    def start(self) -> None:
        self._before = self._current()

    def stop(self) -> float:
        return sum(cpu - self._before.get(pid, 0.0) for pid, cpu in self._current().items())


@dataclass
class RssSampler:
    """Samples the resident memory of a process (and its children) every `interval` s."""

    pid: int
    more_pids: tuple[int, ...] = ()
    interval: float = 0.2
    children: bool = True  # False: the process alone (a bench measuring its own in-process worker)
    peak: int = 0
    last: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"rss-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def sample(self) -> int:
        """The largest RSS of any one worker process (with its children): with several
        worker processes, "flat with campaign size" is a per-process property."""
        sizes = [size for pid in (self.pid, *self.more_pids) if (size := _tree_rss(pid, self.children)) is not None]
        if not sizes:
            return self.last
        rss = max(sizes)
        self.last = rss
        self.peak = max(self.peak, rss)
        self.samples += 1
        return rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def _tree_rss(pid: int, children: bool = True) -> int | None:
    try:
        process = psutil.Process(pid)
        rss = int(process.memory_info().rss)
        for child in process.children(recursive=True) if children else []:
            with contextlib.suppress(psutil.Error):
                rss += int(child.memory_info().rss)
    except psutil.Error:
        return None
    return rss
