"""The ledger's rollups, folded in from a high-water mark after the rows are written.

The writer inserts ledger rows and does nothing more. A :class:`Folder` (a thread of
every process that writes the ledger) then *folds* the rows above the mark into the
rollups: one ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` per rollup table over
those rows (the summing done by the database, in C), and the mark moved, in one
transaction. Readers (:func:`~orchestra.accounting.ledger_totals.ledger_totals`, the
dashboard's per-run cost) add the rows still above the mark, read raw, to the rollups, in
the same statement (one snapshot), so every figure stays exact whenever it is read; the
tail above the mark is about a second of writes.

Which rows are above the mark:

* **SQLite**: ``rowid > mark``. One writer at a time holds the database's write lock from
  its ``BEGIN IMMEDIATE`` to its commit, and a row's ``rowid`` is the largest so far plus
  one (the ledger is append-only), so ``rowid`` order is commit order: a row committed
  later never falls below a mark already taken.
* **PostgreSQL**: writers commit concurrently (gateway replicas, engine workers), and a
  sequence is not commit order: a row numbered 10 may commit after one numbered 11 has been
  folded. Each row records the id of the transaction that wrote it (``txid``, the column's
  default, indexed); a fold takes the oldest transaction still running
  (``pg_snapshot_xmin(pg_current_snapshot())``) as its new mark and folds the rows with
  ``mark <= txid < new mark``: every transaction below the new mark has ended, so all of
  its rows are visible (or rolled back) — none can appear below the mark later. A
  long-running transaction anywhere on the server holds the mark back; figures stay exact
  (the tail is read raw), only larger to read.

Before this, the writer summed each batch's rows in Python and upserted them in the
batch's own transaction: at 10 million rows that cost the ledger a third of its write
throughput on SQLite and 60 % on PostgreSQL (docs/insight.md); the fold costs the writer
nothing and sums thousands of rows per statement.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Connection, Engine, select

from orchestra.store.tables.ledger_rollups import KEYS, MARKS, SUMS

log = logging.getLogger("orchestra.accounting.ledger")

MARK = "ledger"
"""The mark's row in ``ledger_rollup_marks``."""

MARK_ROW = select(MARKS.c.mark).where(MARKS.c.name == MARK)
"""The mark, read (:func:`read_mark`), locked by a fold, or read inside a reader's own
statement (:func:`~orchestra.accounting.ledger_totals.read_above_mark`)."""

FOLD_MOST = 200_000
"""The most rows one fold takes on SQLite, whose write lock it holds meanwhile."""

MAX_RETRY_S = 60.0
"""The longest a folder waits before trying a failed fold again (the wait doubles from
its interval after each failure in a row)."""


def _key_sql(column: str, dialect: str) -> str:
    if column == "day":
        if dialect == "postgresql":
            return "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return "substr(started_at, 1, 10)"
    if column == "model":
        return "COALESCE(served_model, requested_model, '')"
    return f"COALESCE({column}, '')"


_SUM_SQL = {"calls": "COUNT(*)", "errors": "SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END)"}


def _select(table: str, dialect: str, where: str, *, upsert: bool) -> str:
    keys = KEYS[table]
    exprs = [_key_sql(k, dialect) for k in keys]
    sums = [_SUM_SQL.get(s, f"SUM({s})") for s in SUMS]
    sql = (
        f"INSERT INTO {table} ({', '.join((*keys, *SUMS))}) "  # noqa: S608
        f"SELECT {', '.join((*exprs, *sums))} FROM gateway_ledger WHERE {where} "
        f"GROUP BY {', '.join(exprs)}"
    )
    if upsert:
        sets = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in SUMS)
        sql += f" ON CONFLICT ({', '.join(KEYS[table])}) DO UPDATE SET {sets}"
    return sql


def _fold_postgresql(where: str) -> str:
    """One statement folding the rows ``where`` into every rollup table: the rows grouped
    once by every key column of every table (the UTC day as a ``date``, cheap to group
    by), then each table's groups summed from those and upserted (writable CTEs)."""
    columns = list(dict.fromkeys(k for keys in KEYS.values() for k in keys))
    exprs = [
        "(started_at AT TIME ZONE 'UTC')::date" if k == "day" else _key_sql(k, "postgresql")
        for k in columns
    ]
    sums = [_SUM_SQL.get(s, f"SUM({s})") for s in SUMS]
    picks = [f"{e} AS {k}" for e, k in zip((*exprs, *sums), (*columns, *SUMS), strict=True)]
    grouped = f"SELECT {', '.join(picks)} FROM gateway_ledger WHERE {where}"  # noqa: S608
    grouped += f" GROUP BY {', '.join(columns)}"
    upserts = []
    for table, keys in KEYS.items():
        picked = ["to_char(day, 'YYYY-MM-DD')" if k == "day" else k for k in keys]
        sets = ", ".join(f"{s} = {table}.{s} + excluded.{s}" for s in SUMS)
        upserts.append(
            f"INSERT INTO {table} ({', '.join((*keys, *SUMS))}) "  # noqa: S608
            f"SELECT {', '.join(picked)}, {', '.join(f'SUM({s})' for s in SUMS)} FROM grouped "
            f"GROUP BY {', '.join(keys)} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
        )
    ctes = ", ".join(f"fold_{i} AS ({sql})" for i, sql in enumerate(upserts[:-1]))
    return f"WITH grouped AS MATERIALIZED ({grouped}), {ctes} {upserts[-1]}"


def above_mark_sql(dialect: str, mark: str) -> str:
    """The SQL condition on ``gateway_ledger`` for its rows above the mark ``mark`` (an SQL
    expression: a bound parameter or a subquery)."""
    if dialect == "postgresql":
        return f"gateway_ledger.txid >= {mark}"
    return f"gateway_ledger.rowid > {mark}"


def read_mark(conn: Connection) -> int:
    """The mark (see the module's docstring)."""
    return int(conn.execute(MARK_ROW).scalar_one())


def caught_up(conn: Connection) -> bool:
    """Whether no ledger row waits above the mark."""
    above = above_mark_sql(conn.dialect.name, str(read_mark(conn)))
    sql = f"SELECT 1 FROM gateway_ledger WHERE {above} LIMIT 1"  # noqa: S608
    return conn.exec_driver_sql(sql).first() is None


def _horizon(conn: Connection) -> int:
    """The new mark a fold may take now (see the module's docstring)."""
    if conn.dialect.name == "postgresql":
        sql = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
    else:
        sql = "SELECT COALESCE(MAX(rowid), 0) FROM gateway_ledger"
    return int(conn.exec_driver_sql(sql).scalar_one())


def fold(conn: Connection, *, most: int = FOLD_MOST) -> int:
    """Fold the ledger rows above the mark into the rollups and move the mark, in
    ``conn``'s transaction (begun on the ledger's write engine: ``BEGIN IMMEDIATE`` on
    SQLite); returns how far the mark moved (rows on SQLite, transaction ids on
    PostgreSQL). ``most`` bounds one fold on SQLite (the write lock is held meanwhile);
    call again while it returns ``most``."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # The horizon first, before this transaction holds an id of its own (locking the
        # mark's row gives it one, which would hold the horizon back to itself).
        new = _horizon(conn)
        old = int(conn.execute(MARK_ROW.with_for_update()).scalar_one())
        where = f"txid >= {old} AND txid < {new}"
    else:
        old = read_mark(conn)
        new = min(_horizon(conn), old + most)
        where = f"rowid > {old} AND rowid <= {new}"
    if new <= old:
        return 0
    if dialect == "postgresql":
        conn.exec_driver_sql(_fold_postgresql(where))
    else:
        for table in KEYS:
            conn.exec_driver_sql(_select(table, dialect, where, upsert=True))
    conn.exec_driver_sql(
        f"UPDATE ledger_rollup_marks SET mark = {new} WHERE name = '{MARK}'"  # noqa: S608
    )
    return new - old


def fold_all(engine: Engine) -> None:
    """Fold every row above the mark now (each fold in its own transaction on
    ``engine``, the ledger's write engine)."""
    while True:
        with engine.begin() as conn:
            moved = fold(conn)
        if moved < FOLD_MOST or engine.dialect.name == "postgresql":
            return


def fold_until_caught_up(engine: Engine, timeout_s: float | None = None) -> bool:
    """Fold until no row waits above the mark (on PostgreSQL a transaction of another
    client of the server holds the mark back until it ends), or until ``timeout_s``;
    whether it caught up. For benchmarks and tests; readers never need it."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        with engine.begin() as conn:
            fold(conn)
            if caught_up(conn):
                return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def rebuild_rollups(conn: Connection) -> None:
    """Recompute every rollup from the raw ledger rows with one ``GROUP BY`` per table,
    in ``conn``'s transaction, and set the mark (after rows were written around the
    writer: a bulk load, a restore, or a test's fixture; rows above the mark are folded
    in by the next fold anyway). Hold off the ledger's folders meanwhile."""
    dialect = conn.dialect.name
    new = _horizon(conn)
    where = f"txid IS NULL OR txid < {new}" if dialect == "postgresql" else f"rowid <= {new}"
    for table in KEYS:
        conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
        conn.exec_driver_sql(_select(table, dialect, where, upsert=False))
    conn.exec_driver_sql(
        f"UPDATE ledger_rollup_marks SET mark = {new} WHERE name = '{MARK}'"  # noqa: S608
    )


class Folder:
    """The thread that folds the ledger's new rows into the rollups: woken by the writer
    after a batch commits (:meth:`poke`), it folds at most once per ``interval_s``; a
    failed fold is logged (once per streak of failures) and tried again after a wait that
    doubles up to :data:`MAX_RETRY_S` (the rows wait above the mark, still counted by every
    reader). :meth:`close` folds what is left."""

    def __init__(self, engine: Engine, *, interval_s: float = 1.0) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._poked = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        """Held while folding (the thread, or :meth:`fold_now`)."""
        self._thread = threading.Thread(target=self._run, name="ledger-folder", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """New ledger rows were committed: fold them soon."""
        self._poked.set()

    def fold_now(self) -> None:
        """Fold every row above the mark, now, on the caller's thread."""
        with self._lock:
            fold_all(self._engine)

    def _run(self) -> None:
        failures = 0
        while True:
            self._poked.wait()
            if self._stop.is_set():
                return
            self._poked.clear()
            started = time.monotonic()
            wait = self._interval_s
            try:
                self.fold_now()
            except Exception as exc:  # the rows stay above the mark: nothing is lost
                failures += 1
                if failures == 1:  # once per streak, not once a second
                    log.warning("folding the ledger into its rollups failed: %r", exc)
                self._poked.set()
                wait = min(self._interval_s * 2**failures, MAX_RETRY_S)
            else:
                if failures:
                    log.warning("folding the ledger into its rollups works again")
                failures = 0
            if self._stop.wait(max(0.0, wait - (time.monotonic() - started))):
                return

    def close(self) -> None:
        """Stop the thread, then fold what is left (best effort: what fails to fold stays
        above the mark for the next folder)."""
        self._stop.set()
        self._poked.set()
        self._thread.join(timeout=60)
        try:
            self.fold_now()
        except Exception as exc:
            log.warning("folding the ledger into its rollups failed at close: %r", exc)


__all__ = [
    "FOLD_MOST",
    "MARK_ROW",
    "Folder",
    "above_mark_sql",
    "caught_up",
    "fold",
    "fold_all",
    "fold_until_caught_up",
    "read_mark",
    "rebuild_rollups",
]
