"""Sums of ledger rows grouped by attribution and time, read from the rollups.

:func:`ledger_totals` answers "calls, errors, tokens and cost per (developer, month)"
and the like for a span of time. Whole UTC days come from the smallest rollup table that
holds the asked dimensions (:mod:`orchestra.store.tables.ledger_rollups`) plus the rows
not yet folded into it (above the rollups' mark, :mod:`orchestra.accounting.rollups`);
the parts of a day at either end of a span that does not start or end at midnight come
from the raw rows (the ``started_at`` index finds them). All of it is one statement, so
one snapshot: a fold that commits meanwhile can neither hide rows nor count them twice.
``raw=True`` asks the same question of the raw rows alone: the plain ``GROUP BY`` the
rollups replace (tests and the benchmark compare the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    TextClause,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)

from orchestra.accounting.errors import UnknownDimension
from orchestra.accounting.rollups import MARK_ROW, above_mark_sql, read_mark
from orchestra.accounting.store import as_utc, read_rows
from orchestra.store.tables.gateway import GatewayLedgerEntry as L
from orchestra.store.tables.ledger_rollups import KEYS, ROLLUP_TABLES

DIMENSIONS = frozenset(
    {"month", "key_id", "agent", "tier", *(k for keys in KEYS.values() for k in keys)}
)
"""What totals can be grouped and filtered by: ``day`` (UTC, ``YYYY-MM-DD``), ``month``
(``YYYY-MM``), the units (``org`` … ``developer``), ``key_id``, ``agent``, ``tier``,
``model`` (served, else requested), ``provider`` and ``run_id``. A question no rollup
holds (``key_id``, ``agent``, ``tier``, or ``model`` with ``run_id``) is answered from
the raw rows."""


@dataclass(slots=True)
class Totals:
    """The sums of a group of ledger rows."""

    calls: int = 0
    errors: int = 0
    """Calls whose outcome is ``error``."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_nano: int = 0

    def add(self, values: Iterable[Any]) -> None:
        """Add one row of sums (in field order; ``None`` counts 0)."""
        for f, v in zip(fields(self), values, strict=True):
            setattr(self, f.name, getattr(self, f.name) + int(v or 0))


_SUM_NAMES = tuple(f.name for f in fields(Totals))


@dataclass(frozen=True, slots=True)
class LedgerMatch:
    """Rows whose value in any of ``columns`` is ``value`` (e.g. a team: its squad,
    tribe or division)."""

    columns: tuple[str, ...]
    value: str


Key = tuple[str | None, ...]


def rollup_for(needed: set[str]) -> str | None:
    """The first rollup table holding every dimension ``needed`` (``None``: none does)."""
    for name, keys in KEYS.items():
        if needed <= set(keys):
            return name
    return None


def _check(by: Sequence[str], where: Sequence[LedgerMatch]) -> set[str]:
    needed = {("day" if d == "month" else d) for d in by}
    for match in where:
        needed.update(match.columns)
    unknown = (set(by) | needed) - DIMENSIONS
    if unknown or "month" in needed:
        raise UnknownDimension(
            f"ledger totals cannot use {sorted(unknown or {'month'})}",
            hint=f"group by any of {sorted(DIMENSIONS)}; filter by any but month",
        )
    return needed


def _raw_column(name: str, dialect: str) -> ColumnElement[Any]:
    if name in ("day", "month"):
        width = 10 if name == "day" else 7
        if dialect == "postgresql":
            pattern = "YYYY-MM-DD" if name == "day" else "YYYY-MM"
            return func.to_char(func.timezone("UTC", L.started_at), pattern)
        return func.substr(L.started_at, 1, width)
    if name == "model":
        return func.coalesce(L.served_model, L.requested_model, "")
    return func.coalesce(getattr(L, name), "")


def _unindexed(column: Any, dialect: str) -> Any:
    """``column`` as SQLite's query planner cannot use an index for (unary ``+``, which
    changes no value): the tail above the mark is found by ``rowid`` alone, never by the
    ``started_at`` or unit indexes, which would visit months of rows."""
    if dialect != "sqlite":
        return column
    return literal_column(f"+gateway_ledger.{column.key}", type_=column.type)


def _raw_match(name: str, value: str, dialect: str, *, indexed: bool = True) -> Any:
    # A plain column comparison where it means the same (lets an index serve it).
    if value and name not in ("day", "model"):
        column = getattr(L, name)
        return (column if indexed else _unindexed(column, dialect)) == value
    return _raw_column(name, dialect) == value


def above_mark(
    mark: int, where: Sequence[LedgerMatch], dialect: str
) -> list[ColumnElement[bool] | TextClause]:
    """Conditions on ``gateway_ledger`` for its rows above the rollups' ``mark`` (the tail
    not yet folded) that match every ``where``; the mark's own index finds them (on SQLite
    the unit columns are compared so that no other index can)."""
    return [
        text(above_mark_sql(dialect, str(int(mark)))),
        *(or_(*(_raw_match(c, m.value, dialect, indexed=False) for c in m.columns)) for m in where),
    ]


def _raw_query(
    by: Sequence[str],
    where: Sequence[LedgerMatch],
    since: datetime | None,
    until: datetime | None,
    dialect: str,
    *,
    above: int | None = None,
) -> Select[Any]:
    """The plain ``GROUP BY`` over the raw rows; ``above``: only the rows above that mark
    (the rollups' tail), found by the mark's own index."""
    groups = [_raw_column(d, dialect) for d in by]
    sums = [
        func.count(),
        func.sum(case((L.outcome == "error", 1), else_=0)),
        *(func.sum(getattr(L, n)) for n in _SUM_NAMES[2:]),
    ]
    query = select(*groups, *sums)
    if above is None:
        for match in where:
            query = query.where(or_(*(_raw_match(c, match.value, dialect) for c in match.columns)))
        started = L.started_at
    else:
        query = query.where(*above_mark(above, where, dialect))
        started = _unindexed(L.started_at, dialect)
    if since is not None:
        query = query.where(started >= since)
    if until is not None:
        query = query.where(started < until)
    return query.group_by(*groups) if groups else query


def _rollup_query(
    by: Sequence[str],
    where: Sequence[LedgerMatch],
    first: str | None,
    last: str | None,
    table_name: str,
) -> Select[Any]:
    table = ROLLUP_TABLES[table_name]
    c = table.c
    groups = [func.substr(c.day, 1, 7) if d == "month" else c[d] for d in by]
    query = select(*groups, *(func.sum(c[n]) for n in _SUM_NAMES))
    for match in where:
        query = query.where(or_(*(c[col] == match.value for col in match.columns)))
    if first is not None:
        query = query.where(c.day >= first)
    if last is not None:
        query = query.where(c.day < last)
    return query.group_by(*groups) if groups else query


def _midnight(moment: datetime, *, up: bool) -> datetime:
    moment = as_utc(moment)
    floor = datetime.combine(moment.date(), time(), moment.tzinfo)
    return floor + timedelta(days=1) if up and floor != moment else floor


Span = tuple[datetime | None, datetime | None]


def _spans(since: datetime | None, until: datetime | None) -> tuple[Span | None, list[Span]]:
    """The whole days of ``[since, until)`` (for the rollups; ``None``: none) and the
    spans around them to read raw."""
    since = as_utc(since) if since is not None else None
    until = as_utc(until) if until is not None else None
    first = _midnight(since, up=True) if since is not None else None
    last = _midnight(until, up=False) if until is not None else None
    if first is not None and last is not None and first >= last:
        return None, [(since, until)]
    raw: list[Span] = []
    if since is not None and first is not None and since != first:
        raw.append((since, first))
    if until is not None and last is not None and until != last:
        raw.append((last, until))
    return (first, last), raw


def ledger_totals(
    conn: Connection,
    *,
    by: Sequence[str] = (),
    where: Sequence[LedgerMatch] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    raw: bool = False,
) -> dict[Key, Totals]:
    """Totals of the ledger rows started in ``[since, until)`` (``None``: unbounded) that
    pass every ``where``, per distinct value of the ``by`` dimensions (a missing value is
    ``None``). Groups with no rows are absent; ``by=()`` gives one group, ``()``.
    ``raw``: from the raw rows only (the plain ``GROUP BY``)."""
    needed = _check(by, where)
    dialect = conn.dialect.name
    table = None if raw else rollup_for(needed)
    if table is None:
        return _sum_rows(read_rows(conn, _raw_query(by, where, since, until, dialect)), len(by))
    days, edges = _spans(since, until)

    def query(mark: int, mark_now: ColumnElement[Any]) -> Executable:
        queries: list[Select[Any]] = []
        if days is not None:
            first, last = (d.date().isoformat() if d is not None else None for d in days)
            queries.append(_rollup_query(by, where, first, last, table))
            queries.append(_raw_query(by, where, days[0], days[1], dialect, above=mark))
        queries += [_raw_query(by, where, a, b, dialect) for a, b in edges]
        return union_all(*(q.add_columns(mark_now) for q in queries))

    return _sum_rows([row[:-1] for row in read_above_mark(conn, query)], len(by))


_MARK_NOW = MARK_ROW.scalar_subquery()


def read_above_mark(
    conn: Connection, query: Callable[[int, ColumnElement[Any]], Executable]
) -> list[Any]:
    """The rows of ``query(mark, mark_now)`` — a statement that reads the rollups and the
    ledger rows above ``mark``, each of its rows ending with the column ``mark_now`` —
    made under the mark it names. ``mark_now`` reads the mark in the statement's own
    snapshot: when a fold moved it since ``mark`` was read, the rollups read hold rows the
    tail read too, and the statement runs again with the new mark."""
    mark = read_mark(conn)
    for _ in range(5):
        rows = read_rows(conn, query(mark, _MARK_NOW.label("mark_now")))
        seen = {row[-1] for row in rows}
        if not seen or seen == {mark}:
            return rows
        mark = int(seen.pop())
    raise RuntimeError("the ledger's rollups were folded under every read: try again")


def _sum_rows(rows: Iterable[Sequence[Any]], width: int) -> dict[Key, Totals]:
    """The totals per key of ``rows`` (the key's ``width`` values, then the sums; a key
    may come more than once: from the rollups, the rows above the mark and the edges)."""
    out: dict[Key, Totals] = {}
    for row in rows:
        if not row[width]:
            continue  # an aggregate over no rows
        key = tuple(v or None for v in row[:width])
        values = [int(v or 0) for v in row[width:]]  # PostgreSQL sums to Decimal
        totals = out.get(key)
        if totals is None:
            out[key] = Totals(*values)  # one call per group: there may be 100,000 runs
        else:
            totals.add(values)
    return out
