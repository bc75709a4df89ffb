"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
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
