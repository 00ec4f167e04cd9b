"""Storage: SQLAlchemy tables and Alembic migrations; SQLite by default, PostgreSQL by URL."""

from orchestra.store.base import Base
from orchestra.store.database import Database, make_engine, migrate, normalise_url, open_database
from orchestra.store.group_commit import Batch, GroupCommitter

__all__ = [
    "Base",
    "Batch",
    "Database",
    "GroupCommitter",
    "make_engine",
    "migrate",
    "normalise_url",
    "open_database",
]
