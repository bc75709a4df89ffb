"""The migrations are the schema: `alembic upgrade head` builds exactly what the models
declare, on SQLite and PostgreSQL, and every migration can be undone and redone."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from db.migrate import downgrade, upgrade
from db.models import Base
from tests.conftest import Database

pytestmark = pytest.mark.timeout(120)


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_head_builds_exactly_the_models_schema(db: Database) -> None:
    assert differences(db.engine) == []


def test_downgrade_to_base_then_upgrade_to_head_round_trips(db: Database) -> None:
    downgrade(db.engine, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}, "every table is dropped"
    upgrade(db.engine)
    assert differences(db.engine) == []
    assert inspect(db.engine).has_table("step_executions")
