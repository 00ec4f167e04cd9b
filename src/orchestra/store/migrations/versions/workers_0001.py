"""Engine workers: executor ids, leases (heartbeats) and recoveries of dead workers.

Revision ID: workers_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "workers_0001"
down_revision = "0001_base"
branch_labels = ("workers",)
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "engine_workers",
        sa.Column("executor_id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("heartbeat_at", _TS, nullable=False),
        sa.Column("stopped_at", _TS, nullable=True),
        sa.Column("recovered_by", sa.String(128), nullable=True),
        sa.Column("recovered_at", _TS, nullable=True),
        sa.Column("recovered_workflows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_engine_workers")),
    )
    op.create_index(op.f("ix_engine_workers_state"), "engine_workers", ["state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_engine_workers_state"), table_name="engine_workers")
    op.drop_table("engine_workers")
