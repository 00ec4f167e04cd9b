"""Ledger rollups: per day, developer and model, and per day, developer and run;
backfilled from the ledger's existing rows (see ``orchestra.store.tables.ledger_rollups``).

Revision ID: ledger_rollups_0001
Revises: 0003_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ledger_rollups_0001"
down_revision = "0003_gateway"
branch_labels = ("ledger_rollups",)
depends_on = None

# The schema as of this revision (the table module may change later; this may not).
_UNITS = ("org", "division", "tribe", "squad", "developer")
_SUMS = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_nano",
)
_KEYS = {
    "ledger_rollup_model": ("day", *_UNITS, "model", "provider"),
    "ledger_rollup_run": ("day", *_UNITS, "run_id"),
}
_WIDTH = {"day": 10}
_SUM_OF = {
    "calls": "COUNT(*)",
    "errors": "SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END)",
}


def _key_of(column: str, dialect: str) -> str:
    if column == "day":
        if dialect == "postgresql":
            return "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return "substr(started_at, 1, 10)"
    if column == "model":
        return "COALESCE(served_model, requested_model, '')"
    return f"COALESCE({column}, '')"


def _backfill(table: str, keys: tuple[str, ...], dialect: str) -> str:
    exprs = [_key_of(k, dialect) for k in keys]
    sums = [_SUM_OF.get(s, f"SUM({s})") for s in _SUMS]
    return (
        f"INSERT INTO {table} ({', '.join((*keys, *_SUMS))}) "  # noqa: S608
        f"SELECT {', '.join((*exprs, *sums))} FROM gateway_ledger "
        f"GROUP BY {', '.join(exprs)}"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, keys in _KEYS.items():
        op.create_table(
            table,
            *(sa.Column(k, sa.String(_WIDTH.get(k, 200)), nullable=False) for k in keys),
            *(sa.Column(s, sa.BigInteger(), nullable=False) for s in _SUMS),
            sa.PrimaryKeyConstraint(*keys, name=f"pk_{table}"),
            sqlite_with_rowid=False,
        )
        op.execute(_backfill(table, keys, dialect))


def downgrade() -> None:
    for table in reversed(_KEYS):
        op.drop_table(table)
