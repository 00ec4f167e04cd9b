"""The dashboard's per-run cost: the per-run rollup keyed by run first (a run's rows next
to each other: its cost read from them alone, no second index to maintain on every
write), and the runs indexed by when they finished (the runs of a period, each with its
cost, in one query).

Revision ID: ledger_rollups_0002
Revises: ledger_rollups_0001
"""

from __future__ import annotations

from alembic import op

revision = "ledger_rollups_0002"
down_revision = "ledger_rollups_0001"
branch_labels = None
depends_on = "0004_engine"

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
_COLUMNS = ("day", *_UNITS, "run_id")


def _rekey(key: tuple[str, ...]) -> None:
    """Give ``ledger_rollup_run`` the primary key ``key`` (same columns, another order)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_rollup_run DROP CONSTRAINT pk_ledger_rollup_run")
        op.execute(
            f"ALTER TABLE ledger_rollup_run ADD CONSTRAINT pk_ledger_rollup_run "
            f"PRIMARY KEY ({', '.join(key)})"
        )
        return
    # SQLite cannot change a primary key: a copy of the table with the new one.
    widths = {"day": 10}
    columns = [f"{c} VARCHAR({widths.get(c, 200)}) NOT NULL" for c in _COLUMNS]
    columns += [f"{s} BIGINT NOT NULL" for s in _SUMS]
    names = ", ".join((*_COLUMNS, *_SUMS))
    op.execute(
        f"CREATE TABLE ledger_rollup_run_rekeyed ({', '.join(columns)}, "
        f"CONSTRAINT pk_ledger_rollup_run PRIMARY KEY ({', '.join(key)})) WITHOUT ROWID"
    )
    op.execute(
        f"INSERT INTO ledger_rollup_run_rekeyed ({names}) "  # noqa: S608
        f"SELECT {names} FROM ledger_rollup_run"
    )
    op.execute("DROP TABLE ledger_rollup_run")
    op.execute("ALTER TABLE ledger_rollup_run_rekeyed RENAME TO ledger_rollup_run")


def upgrade() -> None:
    _rekey(("run_id", "day", *_UNITS))
    op.create_index("ix_engine_runs_finished_at", "engine_runs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_engine_runs_finished_at", table_name="engine_runs")
    _rekey(_COLUMNS)
