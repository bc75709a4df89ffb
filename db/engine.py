"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Executable, Result, Row, RowMapping, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SessionFactory = sessionmaker[Session]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine whose transactions are safe for several concurrent workers.

    SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE`, so two writers queue up
    instead of failing with "database is locked" half-way through a transaction.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs)
        _make_sqlite_transactions_immediate(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", 1800)  # instead of a pre-ping round trip on every checkout
    return create_engine(url, **kwargs)


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> SessionFactory:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(sessions: SessionFactory) -> Engine:
    return cast(Engine, sessions.kw["bind"])


@contextmanager
def unit_of_work(sessions: SessionFactory) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    with sessions() as session, session.begin():
        yield session


Params = Mapping[str, Any]


def changed_rows(result: Result[Any]) -> int:
    """Rows an UPDATE, DELETE or INSERT matched. `execute()` is typed as returning a
    `Result`; for those statements it is a `CursorResult`, which has the count."""
    return int(cast(CursorResult[Any], result).rowcount)


class Statements:
    """Core statements on a session's transaction or, with `commit_each`, each in its own.

    Results are read before any commit, so a caller never holds a cursor across one."""

    def __init__(self, target: Session | Connection, *, commit_each: bool = False) -> None:
        self._target = target
        self._commit_each = commit_each
        bind = target.get_bind() if isinstance(target, Session) else target
        self.dialect: str = bind.dialect.name

    def first(self, statement: Executable, params: Params | None = None) -> RowMapping | None:
        row = self._target.execute(statement, params).mappings().first()
        self._committed()
        return row

    def rows(self, statement: Executable, params: Params | None = None) -> Sequence[Row[Any]]:
        rows = self._target.execute(statement, params).all()
        self._committed()
        return rows

    def count(self, statement: Executable, params: Params | None = None) -> int:
        """Rows an UPDATE or DELETE changed."""
        changed = changed_rows(self._target.execute(statement, params))
        self._committed()
        return changed

    @contextmanager
    def together(self) -> Iterator[None]:
        """The statements inside commit as one transaction, where each would otherwise
        commit by itself (SQLite's `commit_each`; a session's transaction already is one).
        Not for an autocommit PostgreSQL connection: there, one statement does it."""
        if not self._commit_each:
            yield
            return
        self._commit_each = False
        try:
            yield
        except BaseException:
            self._target.rollback()
            raise
        finally:
            self._commit_each = True
        self._target.commit()

    def _committed(self) -> None:
        if self._commit_each:
            self._target.commit()


@contextmanager
def single_statements(engine: Engine) -> Iterator[Statements]:
    """Every statement commits by itself. On PostgreSQL that is autocommit: a row lock an
    UPDATE takes (the sender's quota row, which every send of a mailbox updates) is released
    inside the server when the statement ends, instead of when this thread next wins the GIL
    to send COMMIT; and no BEGIN/COMMIT round trips. SQLite commits after each statement
    (its writers still go through `BEGIN IMMEDIATE`)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            yield Statements(connection, commit_each=True)
    else:
        with engine.connect() as connection:
            yield Statements(connection.execution_options(isolation_level="AUTOCOMMIT"))
