"""Storage: SQLAlchemy tables and Alembic migrations; SQLite by default, PostgreSQL by URL."""

from orchestra.store.base import Base
from orchestra.store.database import Database, make_engine, migrate, normalise_url, open_database
from orchestra.store.group_commit import Batch, GroupCommitter, write_engine
from orchestra.store.statements import RowInsert, Statement, db_time, sqlite_time, time_for

__all__ = [
    "Base",
    "Batch",
    "Database",
    "GroupCommitter",
    "RowInsert",
    "Statement",
    "db_time",
    "make_engine",
    "migrate",
    "normalise_url",
    "open_database",
    "sqlite_time",
    "time_for",
    "write_engine",
]
