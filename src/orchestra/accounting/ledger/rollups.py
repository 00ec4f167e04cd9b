"""The ledger's rollups, upserted in the transaction of each write batch.

The writer (:class:`~.writer.BatchRows`) notes the id of every row it inserts; at the end
of the batch, after the rows, one ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE``
per rollup table adds the sums of exactly those rows to each key's row (SQLite and
PostgreSQL both support it). The rows and their sums commit together or not at all, so
a rollup always equals a ``GROUP BY`` over the ledger (the tables are described in
:mod:`orchestra.store.tables.ledger_rollups`). The sums are computed by the database,
from the rows it has just stored: nothing per row runs in Python on the writer thread
(where it would hold the GIL the request path needs). The ledger is append-only
(settling a reservation changes the budget windows, never a ledger row), so sums only
ever grow.
"""

from __future__ import annotations

import json

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
    where = (
        " WHERE id IN (SELECT value FROM json_each(?))"
        if dialect == "sqlite"
        else " WHERE id = ANY(%s)"
    )
    sets = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in SUMS)
    keys = ", ".join(KEYS[table])
    return f"{_select(table, dialect, where)} ON CONFLICT ({keys}) DO UPDATE SET {sets}"


_UPSERTS = {d: [_upsert(t, d) for t in KEYS] for d in ("sqlite", "postgresql")}


def add_to_rollups(conn: Connection, ids: list[str]) -> None:
    """Add the ledger rows ``ids`` (stored in ``conn``'s transaction, not yet summed) to
    every rollup, in that transaction."""
    if not ids:
        return
    dialect = conn.dialect.name
    param = json.dumps(ids) if dialect == "sqlite" else ids
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    for sql in _UPSERTS["sqlite" if dialect == "sqlite" else "postgresql"]:
        cursor.execute(sql, (param,))


def rebuild_rollups(conn: Connection) -> None:
    """Recompute every rollup from the raw ledger rows with one ``GROUP BY`` per table,
    in ``conn``'s transaction (after rows were written around the writer: a bulk load,
    a restore, or a test's fixture). Hold off the ledger writer meanwhile: it adds to the
    rows being replaced."""
    dialect = conn.dialect.name
    for table in KEYS:
        conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
        conn.exec_driver_sql(_select(table, dialect, ""))
