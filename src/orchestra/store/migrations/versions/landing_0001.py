"""The merge queue, its per-repository lock and the files each run's plan owns.

Revision ID: landing_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "landing_0001"
down_revision = "0001_base"
branch_labels = ("landing",)
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "landing_file_claims",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("repo", sa.String(1000), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "path", name=op.f("pk_landing_file_claims")),
    )
    op.create_index(op.f("ix_landing_file_claims_repo"), "landing_file_claims", ["repo"])
    op.create_table(
        "landing_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repo", sa.String(1000), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("branch", sa.String(255), nullable=False),
        sa.Column("onto", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("overlaps", sa.Text(), nullable=False),
        sa.Column("onto_before", sa.String(64), nullable=True),
        sa.Column("landed_commit", sa.String(64), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_landing_queue")),
    )
    for column in ("repo", "run_id", "status"):
        op.create_index(op.f(f"ix_landing_queue_{column}"), "landing_queue", [column])
    op.create_table(
        "landing_locks",
        sa.Column("repo", sa.String(1000), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("repo", name=op.f("pk_landing_locks")),
    )


def downgrade() -> None:
    for table in ("landing_locks", "landing_queue", "landing_file_claims"):
        op.drop_table(table)
