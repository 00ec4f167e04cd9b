"""Fixed SQL run on the raw DB-API cursor, and datetimes in the form its columns take.

The hot path (reserve, settle, ledger append) runs a handful of statements per call;
skipping SQLAlchemy's statement and result machinery for them roughly halves the cost of
each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


class Statement:
    """Fixed SQL run on the raw DB-API cursor of a SQLAlchemy connection.

    The hot path (reserve, settle, ledger append) runs a handful of statements per call;
    skipping SQLAlchemy's statement and result machinery for them roughly halves the
    cost of each. Parameters are written ``:name`` (SQLite's native named style) and
    rewritten once to ``%(name)s`` for psycopg. Datetimes must go through :func:`db_time`.
    """

    def __init__(self, sql: str) -> None:
        self.sqlite = sql
        self.pyformat = _PARAM.sub(r"%(\1)s", sql)

    def run(self, conn: Connection, params: dict[str, Any]) -> Any:
        """Execute in ``conn``'s transaction; returns the DB-API cursor."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(self.sqlite if conn.dialect.name == "sqlite" else self.pyformat, params)
        return cursor

    def run_many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Execute once per parameter set, in one driver call."""
        if not rows:
            return
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(self.sqlite if conn.dialect.name == "sqlite" else self.pyformat, rows)


class RowInsert:
    """A fixed multi-row ``INSERT`` of parameter tuples in column order, on the raw DB-API
    cursor (positional ``?`` for SQLite, ``%s`` for psycopg): the cheapest form for the
    driver, and the row is built once, when the work is queued, not when it runs."""

    def __init__(self, table: str, columns: tuple[str, ...]) -> None:
        names = ", ".join(columns)
        self.sqlite = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
        self.pyformat = self.sqlite.replace("?", "%s")
        self.width = len(columns)
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
        self.from_json = f"INSERT INTO {table} ({names}) SELECT {values} FROM json_each(?)"  # noqa: S608
        """SQLite: the rows of one JSON array of value arrays (column order), in one call."""

    def run_many(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples of :attr:`width` values) in ``conn``'s transaction."""
        if not rows:
            return
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(self.sqlite if conn.dialect.name == "sqlite" else self.pyformat, rows)

    def run_json(self, conn: Connection, rows: list[str]) -> None:
        """SQLite: insert ``rows``, each a JSON array of the values in column order (JSON
        strings, numbers, booleans and nulls, stored as SQLite's own types)."""
        if rows:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(self.from_json, (f"[{','.join(rows)}]",))


def sqlite_time(value: datetime) -> str:
    """``value`` in SQLAlchemy's SQLite text format for a ``DateTime`` column
    (``YYYY-MM-DD HH:MM:SS.ffffff``, always six fraction digits, so the text sorts and
    compares as the time does), in UTC; a naive ``value`` is taken as UTC."""
    # isoformat with a fixed timespec is several times cheaper than strftime; an aware UTC
    # time's "+00:00" suffix is cut rather than copying the datetime without its zone.
    if value.tzinfo is None:
        return value.isoformat(" ", "microseconds")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def time_for(dialect: str) -> Callable[[datetime], Any]:
    """How a ``DateTime`` column of ``dialect`` takes a datetime on the raw DB-API cursor."""
    return sqlite_time if dialect == "sqlite" else _as_is


def _as_is(value: datetime) -> datetime:
    return value


def db_time(conn: Connection, value: datetime) -> Any:
    """A datetime as the column stores it: SQLAlchemy's SQLite text format (UTC), or as is."""
    if conn.dialect.name == "sqlite":
        return sqlite_time(value)
    return value
