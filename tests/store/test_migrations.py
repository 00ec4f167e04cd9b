from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import orchestra.store.tables  # noqa: F401
from orchestra.store import Base, Database, open_database


def test_migrations_create_exactly_the_tables_the_models_declare(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrating_twice_is_a_no_op(database_url: str) -> None:
    first = open_database(database_url)
    tables = set(inspect(first.engine).get_table_names())
    first.dispose()
    second = open_database(database_url)
    assert set(inspect(second.engine).get_table_names()) == tables
    assert "alembic_version" in tables
    second.dispose()
