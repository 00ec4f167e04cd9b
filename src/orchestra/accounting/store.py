"""Database plumbing shared by the accounting components: the clock, and the store that
holds the database with its group-commit writer (:mod:`orchestra.store.group_commit`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from orchestra.store import Database
from orchestra.store.group_commit import Batch, GroupCommitter, write_engine
from orchestra.store.statements import RowInsert, Statement, db_time, sqlite_time, time_for

__all__ = [
    "AccountingStore",
    "Batch",
    "Clock",
    "GroupCommitter",
    "RowInsert",
    "Statement",
    "as_utc",
    "db_time",
    "sqlite_time",
    "time_for",
    "utcnow",
]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The default clock: an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes read back from SQLite are UTC; make them aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AccountingStore:
    """The database, its write engine and the group committer, shared by the components."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.write_engine = write_engine(db)
        self.inline_engine = (
            write_engine(db, wait_for_lock=False) if db.engine.dialect.name == "sqlite" else None
        )
        self.committer = GroupCommitter(self.write_engine, inline_engine=self.inline_engine)
        self.dialect = db.engine.dialect.name

    @classmethod
    def of(cls, source: Database | AccountingStore) -> AccountingStore:
        """``source`` itself, or a new store over the database ``source``."""
        return source if isinstance(source, AccountingStore) else cls(source)

    def close(self) -> None:
        """Stop the writer and release the write engine (not the shared database)."""
        self.committer.close()
        if self.write_engine is not self.db.engine:
            self.write_engine.dispose()
        if self.inline_engine is not None:
            self.inline_engine.dispose()
