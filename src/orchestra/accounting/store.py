"""Database plumbing shared by the accounting components: the clock, and the store that
holds the database with its group-commit writer (:mod:`orchestra.store.group_commit`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from orchestra.accounting.rollups import Folder, fold_all
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
    "UnreadableText",
    "as_utc",
    "db_time",
    "is_undecodable",
    "lenient_text",
    "read_rows",
    "sqlite_time",
    "time_for",
    "utcnow",
]

Clock = Callable[[], datetime]
log = logging.getLogger("orchestra.accounting")


def utcnow() -> datetime:
    """The default clock: an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes read back from SQLite are UTC; make them aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AccountingStore:
    """The database, its write engine and the group committer, shared by the components."""

    def __init__(self, db: Database, *, rollups: bool = True) -> None:
        self.db = db
        self.rollups = rollups
        """Whether this store folds the ledger rows it writes into the ledger's rollups
        (``False`` only to measure what that costs; the rows then wait above the mark,
        still counted by every reader, until some other store folds)."""
        self.write_engine = write_engine(db)
        self.inline_engine = (
            write_engine(db, wait_for_lock=False) if db.engine.dialect.name == "sqlite" else None
        )
        self.committer = GroupCommitter(self.write_engine, inline_engine=self.inline_engine)
        self.dialect = db.engine.dialect.name
        self._folder: Folder | None = None
        self._folder_lock = threading.Lock()

    def rows_written(self) -> None:
        """Ledger rows were committed: have them folded into the rollups soon (the folder
        thread starts with this store's first rows)."""
        if not self.rollups:
            return
        folder = self._folder
        if folder is None:
            with self._folder_lock:
                if self._folder is None:
                    self._folder = Folder(self.write_engine)
                folder = self._folder
        folder.poke()

    def fold_rollups(self) -> None:
        """Fold every ledger row above the mark into the rollups now (tests, benchmarks,
        and a clean shutdown; readers never need it: they count the rows above the mark)."""
        fold_all(self.write_engine)

    @classmethod
    def of(cls, source: Database | AccountingStore) -> AccountingStore:
        """``source`` itself, or a new store over the database ``source``."""
        return source if isinstance(source, AccountingStore) else cls(source)

    def close(self) -> None:
        """Stop the writer, fold what it wrote, and release the write engine (not the
        shared database)."""
        self.committer.close()
        if self._folder is not None:
            self._folder.close()
        if self.write_engine is not self.db.engine:
            self.write_engine.dispose()
        if self.inline_engine is not None:
            self.inline_engine.dispose()


class UnreadableText(str):
    """Text a SQLite row held that is not valid UTF-8 (written by something other than
    Orchestra, or by a driver that let a lone surrogate through), decoded with its bad
    bytes as backslash escapes so the rest of the read goes on."""

    __slots__ = ()


def _lenient(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return UnreadableText(data.decode("utf-8", "backslashreplace"))


def is_undecodable(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite failing to decode a stored text as UTF-8."""
    return isinstance(exc, OperationalError) and "decode" in str(exc.orig).lower()


@contextlib.contextmanager
def lenient_text(conn: Connection) -> Iterator[None]:
    """While open, SQLite texts that are not valid UTF-8 read as :class:`UnreadableText`
    on ``conn`` instead of failing the whole read (no effect on other databases). Slower
    than the driver's own decoding: for a retry after :func:`is_undecodable` errors."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw: Any = conn.connection.driver_connection
    before = raw.text_factory
    raw.text_factory = _lenient
    try:
        yield
    finally:
        raw.text_factory = before


def read_rows(conn: Connection, query: Any) -> list[Any]:
    """Every row of ``query`` on ``conn``; when SQLite cannot decode a stored text, read
    again with :func:`lenient_text` (a damaged row comes back with :class:`UnreadableText`
    in it instead of failing the whole read)."""
    try:
        return list(conn.execute(query).all())
    except OperationalError as exc:
        if not is_undecodable(exc):
            raise
    conn.rollback()
    log.warning("a stored text is not valid UTF-8: read again with its bad bytes escaped")
    with lenient_text(conn):
        return list(conn.execute(query).all())
