"""The ledger's rollups, upserted in the transaction of each write batch.

The writer (:class:`~.writer.BatchRows`) keeps the row of every entry it inserts; at the
end of the batch, after the rows, it sums them per rollup key in Python
(:func:`batch_sums`: a few dictionary updates per row, on rows it already holds) and
upserts each rollup table once for all its keys (one ``executemany`` of
``INSERT … ON CONFLICT DO UPDATE``, the sums added to the stored ones; SQLite and
PostgreSQL both support it). The rows and their sums commit together or not at all, so
a rollup always equals a ``GROUP BY`` over the ledger, and a batch that failed adds
nothing (the tables are described in :mod:`orchestra.store.tables.ledger_rollups`).

The first form read the batch's rows back by id and grouped them in SQL (one
``INSERT … SELECT … GROUP BY`` per table): on a ledger of millions of rows every id
lookup is a walk down the primary key's index, and the writer lost a third of its
throughput to it; summing the rows in hand costs a few microseconds per row. The ledger
is append-only (settling a reservation changes the budget windows, never a ledger row),
so sums only ever grow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Connection

from orchestra.store.tables.ledger_rollups import KEYS, SUMS


def _key_sql(column: str, dialect: str) -> str:
    if column == "day":
        if dialect == "postgresql":
            return "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return "substr(started_at, 1, 10)"
    if column == "model":
        return "COALESCE(served_model, requested_model, '')"
    return f"COALESCE({column}, '')"


_SUM_SQL = {"calls": "COUNT(*)", "errors": "SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END)"}


def _select(table: str, dialect: str, where: str) -> str:
    keys = KEYS[table]
    exprs = [_key_sql(k, dialect) for k in keys]
    sums = [_SUM_SQL.get(s, f"SUM({s})") for s in SUMS]
    return (
        f"INSERT INTO {table} ({', '.join((*keys, *SUMS))}) "  # noqa: S608
        f"SELECT {', '.join((*exprs, *sums))} FROM gateway_ledger{where} "
        f"GROUP BY {', '.join(exprs)}"
    )


def _upsert(table: str, dialect: str) -> str:
    columns = (*KEYS[table], *SUMS)
    mark = "?" if dialect == "sqlite" else "%s"
    sets = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in SUMS)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join([mark] * len(columns))}) "
        f"ON CONFLICT ({', '.join(KEYS[table])}) DO UPDATE SET {sets}"
    )


_UPSERTS = {d: {t: _upsert(t, d) for t in KEYS} for d in ("sqlite", "postgresql")}

# Where the rollups' values sit in a ledger row (``entries.COLUMNS`` order).
_STARTED, _UNITS, _RUN, _REQUESTED, _SERVED, _PROVIDER = 1, slice(3, 8), 10, 13, 14, 15
_TOKENS, _OUTCOME = slice(16, 21), 25


def _day(started: Any) -> str:
    """The UTC day of a row's start: SQLite's text (``YYYY-MM-DD …``, UTC) or a datetime
    (PostgreSQL's; a naive one is UTC)."""
    if isinstance(started, str):
        return started[:10]
    if started.tzinfo is not None:
        started = started.astimezone(UTC)
    return f"{started:%Y-%m-%d}"


def _add(sums: dict[tuple[str, ...], list[int]], key: tuple[str, ...], values: list[int]) -> None:
    held = sums.get(key)
    if held is None:
        sums[key] = values.copy()
    else:
        for i, v in enumerate(values):
            held[i] += v


def batch_sums(rows: Iterable[Sequence[Any]]) -> dict[str, dict[tuple[str, ...], list[int]]]:
    """Per rollup table, per key: the sums (in :data:`SUMS` order) of the ledger ``rows``
    (``gateway_ledger`` rows in column order) — what a ``GROUP BY`` over them gives."""
    by_model: dict[tuple[str, ...], list[int]] = {}
    by_run: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        units = (_day(row[_STARTED]), *(u if u is not None else "" for u in row[_UNITS]))
        served, requested, provider = row[_SERVED], row[_REQUESTED], row[_PROVIDER]
        model = served if served is not None else requested if requested is not None else ""
        values = [1, int(row[_OUTCOME] == "error"), *(int(v or 0) for v in row[_TOKENS])]
        _add(by_model, (*units, model, provider if provider is not None else ""), values)
        run = row[_RUN]
        _add(by_run, (*units, run if run is not None else ""), values)
    return {"ledger_rollup_model": by_model, "ledger_rollup_run": by_run}


def add_to_rollups(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Add the ledger ``rows`` (stored in ``conn``'s transaction, not yet summed) to every
    rollup, in that transaction."""
    if not rows:
        return
    statements = _UPSERTS["sqlite" if conn.dialect.name == "sqlite" else "postgresql"]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    for table, sums in batch_sums(rows).items():
        cursor.executemany(statements[table], [(*k, *v) for k, v in sums.items()])


def rebuild_rollups(conn: Connection) -> None:
    """Recompute every rollup from the raw ledger rows with one ``GROUP BY`` per table,
    in ``conn``'s transaction (after rows were written around the writer: a bulk load,
    a restore, or a test's fixture). Hold off the ledger writer meanwhile: it adds to the
    rows being replaced."""
    dialect = conn.dialect.name
    for table in KEYS:
        conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
        conn.exec_driver_sql(_select(table, dialect, ""))
