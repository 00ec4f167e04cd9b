"""Rollups of the ledger (``gateway_ledger``), maintained as it is written.

Each table sums the ledger's rows per UTC day and a key of attribution columns; the
ledger writer upserts them in the same transaction as the rows they sum
(:mod:`orchestra.accounting.ledger.rollups`), so a rollup always equals a ``GROUP BY``
over the raw rows. Key columns hold ``''`` for a value the ledger row lacks (``NULL``):
unique keys treat ``NULL``\\ s as distinct, an upsert could never find its row.

Two tables: per developer (with their units) and model, and per developer and run —
what the dashboard's pages ask. Each more table costs the writer another upsert per
batch; a question neither holds (by agent, key or tier) is answered from the raw rows.
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
