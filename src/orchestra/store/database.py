"""Opening the database and bringing its schema up to date."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from orchestra.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite files get WAL mode and their folder created."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"not a database URL: {url!r}",
            hint="use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> AlembicConfig:
    """An Alembic configuration for our migrations that runs them on ``engine``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Apply every migration not yet applied (all branches: ``upgrade heads``)."""
    try:
        command.upgrade(alembic_config(engine), "heads")
    except OperationalError as exc:
        raise StoreError(
            f"cannot migrate database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}",
            hint="check that the database server is running and the URL is right",
        ) from exc


@dataclass
class Database:
    """An open, migrated database and a session factory bound to it."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Close the pooled connections (the database stays usable; new ones open on use)."""
        self.engine.dispose()


def open_database(url: str, *, migrate_schema: bool = True) -> Database:
    """Open ``url`` and (by default) bring its schema up to date."""
    engine = make_engine(url)
    if migrate_schema:
        migrate(engine)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))
