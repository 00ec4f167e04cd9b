"""The ledger's rollups folded in after the write, from a high-water mark: the mark table,
and on PostgreSQL the id of the transaction that wrote each ledger row (the order in
which rows become safe to fold; see ``orchestra.accounting.rollups``). The rows
already written were summed by the writer as before: they are below the mark.

Revision ID: ledger_rollups_0003
Revises: ledger_rollups_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestra.store.migrations.versions.ledger_rollups_0001 import _KEYS, _backfill

revision = "ledger_rollups_0003"
down_revision = "ledger_rollups_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_rollup_marks",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("mark", sa.BigInteger(), nullable=False),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.add_column("gateway_ledger", sa.Column("txid", sa.BigInteger(), nullable=True))
    if postgresql:
        # Nullable with no default first (no rewrite of the table), then the default for
        # the rows to come.
        op.execute(
            "ALTER TABLE gateway_ledger ALTER COLUMN txid "
            "SET DEFAULT (pg_current_xact_id()::text::bigint)"
        )
    # Over the rows that have one (none on SQLite; on PostgreSQL those written from now on):
    # a B-tree, whose new entries all go to its right edge. (A BRIN index was tried: rows
    # PostgreSQL puts in free space all over the table widen ranges everywhere, and a fold
    # of 5,000 rows read 25,736 pages of a 10-million-row ledger.)
    op.execute(
        "CREATE INDEX ix_gateway_ledger_txid ON gateway_ledger (txid) WHERE txid IS NOT NULL"
    )
    mark = (
        "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        if postgresql
        else "COALESCE(MAX(rowid), 0)"
    )
    op.execute(
        f"INSERT INTO ledger_rollup_marks (name, mark) SELECT 'ledger', {mark} "
        + ("" if postgresql else "FROM gateway_ledger")
    )


def downgrade() -> None:
    # The writer of the revisions before this one sums its rows in their own transaction
    # and expects the rollups whole: the rows above the mark are folded in first, by
    # rebuilding the rollups from the rows.
    for table, keys in _KEYS.items():
        op.execute(f"DELETE FROM {table}")  # noqa: S608
        op.execute(_backfill(table, keys, op.get_bind().dialect.name))
    op.execute("DROP INDEX ix_gateway_ledger_txid")
    op.execute("ALTER TABLE gateway_ledger DROP COLUMN txid")
    op.drop_table("ledger_rollup_marks")
