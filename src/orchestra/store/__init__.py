"""Storage: SQLAlchemy tables and Alembic migrations; SQLite by default, PostgreSQL by URL."""

from orchestra.store.base import Base
from orchestra.store.database import Database, make_engine, migrate, normalise_url, open_database

__all__ = ["Base", "Database", "make_engine", "migrate", "normalise_url", "open_database"]
