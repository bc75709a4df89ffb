"""Running the API service: uvicorn in this process, wired to the real database and Temporal.

`outbound api` runs it alone; the dev command runs it next to a worker in one event
loop, which is why it is a coroutine rather than `uvicorn.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from db.engine import make_engine, make_session_factory
from runtime.settings import Settings
from runtime.temporal import connect
from workers.api.app import ApiDependencies, create_app
from workers.api.temporal_link import TemporalConnector

log = logging.getLogger("outbound.api")
STARTUP_POLL_SECONDS = 0.05


async def serve_api(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until cancelled or, with `handle_signals`, until SIGINT/SIGTERM; `ready` is
    set once the socket accepts connections.

    Temporal is connected lazily and retried, so the service comes up (and takes
    webhooks) even when Temporal starts later or is briefly down. A host/port that
    cannot be bound raises `OSError` here (uvicorn alone would call `sys.exit`). With
    `handle_signals=False` the caller owns the signals and stops the service by
    cancelling this coroutine (uvicorn otherwise swaps the process's handlers while it
    runs and re-raises the signal when it stops).
    """
    host = host or settings.api_host
    listener = bind_socket(host, settings.api_port if port is None else port)
    engine = make_engine(settings.database_url)
    deps = ApiDependencies(settings, make_session_factory(engine), TemporalConnector(lambda: connect(settings)))
    config = uvicorn.Config(
        create_app(deps),
        host=host,
        port=int(listener.getsockname()[1]),
        log_config=None,  # the process's logging setup applies
        access_log=False,  # it prints paths, and paths carry unsubscribe tokens; the app logs routes
        server_header=False,
        lifespan="off",
    )
    server = uvicorn.Server(config) if handle_signals else _ServerWithoutSignals(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await _wait_started(server, serving)
        if ready is not None:
            ready.set()
        log.info("API service listening on %s:%d (public URL %s)", host, config.port, settings.public_base_url)
        await serving
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        raise
    finally:
        listener.close()
        engine.dispose()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (port 0: any free one, see `getsockname`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"the API service cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


class _ServerWithoutSignals(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _wait_started(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    """Until uvicorn is listening; if it stops first, its error is raised."""
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the API service stopped while starting")
        await asyncio.sleep(STARTUP_POLL_SECONDS)
