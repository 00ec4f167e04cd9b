"""Rollups of the ledger (``gateway_ledger``), folded in shortly after it is written.

Each table sums the ledger's rows per UTC day and a key of attribution columns, for
every row below the high-water mark in ``ledger_rollup_marks``; the rows above it are
folded in by :mod:`orchestra.accounting.rollups`, and read raw until then, so a
rollup plus the rows above the mark always equals a ``GROUP BY`` over the raw rows. Key
columns hold ``''`` for a value the ledger row lacks (``NULL``): unique keys treat
``NULL``\\ s as distinct, an upsert could never find its row.

Two tables: per developer (with their units) and model, and per developer and run —
what the dashboard's pages ask. Each more table costs every fold another statement
(and a reader its own tail); a question neither holds (by agent, key or tier) is answered
from the raw rows.
Sums are integers: calls, errors (``outcome = 'error'``), the four token counts and the
cost in nano-dollars.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, String, Table

from orchestra.store.base import Base

UNITS = ("org", "division", "tribe", "squad", "developer")
"""The attribution columns every rollup keys on (after the day)."""

SUMS = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_nano",
)
"""The summed columns, in this order everywhere (rows, statements, reads)."""

KEYS: dict[str, tuple[str, ...]] = {
    "ledger_rollup_model": ("day", *UNITS, "model", "provider"),
    "ledger_rollup_run": ("day", *UNITS, "run_id"),
}
"""Each rollup table's key, narrowest table first. ``model`` is the served model, else
the requested one."""

_WIDTH = {"day": 10}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "ledger_rollup_model": KEYS["ledger_rollup_model"],
    "ledger_rollup_run": ("run_id", "day", *UNITS),
}
"""Each table's primary key, in index order. The per-run table's begins with the run: a
run's cost is read from its few rows, next to each other in the key's order (the table
is clustered by its key on SQLite, ``WITHOUT ROWID``), with no second index to maintain
on every write; its questions by day (over every run) are rare and read it whole."""


def _table(name: str, keys: tuple[str, ...]) -> Table:
    return Table(
        name,
        Base.metadata,
        *(Column(k, String(_WIDTH.get(k, 200)), nullable=False) for k in keys),
        *(Column(s, BigInteger, nullable=False) for s in SUMS),
        PrimaryKeyConstraint(*PRIMARY_KEYS[name], name=f"pk_{name}"),
        sqlite_with_rowid=False,
    )


ROLLUP_TABLES: dict[str, Table] = {name: _table(name, keys) for name, keys in KEYS.items()}
"""The rollup tables by name, narrowest first."""


MARKS = Table(
    "ledger_rollup_marks",
    Base.metadata,
    Column("name", String(40), primary_key=True),
    Column("mark", BigInteger, nullable=False),
)
"""The rollups' high-water mark (one row, ``name = 'ledger'``): every ledger row below it
is in the rollups, none above. SQLite: the highest ``rowid`` folded. PostgreSQL: a
transaction id; the rows of every transaction below it are folded (``txid < mark``)."""
