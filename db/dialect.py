"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, func, select, sql, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

Insert = sqlite.Insert | postgresql.Insert


def dialect_insert(session: Session, table: Table | Any) -> Insert:
    """An INSERT with `on_conflict_do_*` for the session's database (SQLite or PostgreSQL)."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"upserts are implemented for SQLite and PostgreSQL, not {name}")


def insert_many(session: Session, statement: sql.Insert, rows: list[dict[str, Any]]) -> list[Any]:
    """Run one INSERT for many rows (all with the same keys); with RETURNING, the first
    returned column of each written row.

    PostgreSQL gets one array per column (`INSERT ... SELECT * FROM unnest(...)`): the
    multi-row VALUES form carries 12,000 parameters per batch, and psycopg parsing that
    text took most of a 100,000-row import.
    """
    if not rows:
        return []
    parameters: list[dict[str, Any]] | None = rows
    if session.get_bind().dialect.name == "postgresql":
        names = list(rows[0])
        columns = statement.table.c
        arrays = [bindparam(None, [row[n] for row in rows], type_=postgresql.ARRAY(columns[n].type)) for n in names]
        source = func.unnest(*arrays).table_valued(*names).render_derived(name="source")
        statement, parameters = statement.from_select(names, select(*source.c)), None
    if not statement.returning_column_descriptions:
        session.execute(statement, parameters)
        return []
    return list(session.scalars(statement, parameters))


def refresh_statistics(session: Session, table: str) -> None:
    """PostgreSQL plans joins from table statistics; after a bulk insert they go stale (a
    table of 100,000 rows is still "empty", so joins become nested-loop scans of it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"ANALYZE {table}"))
