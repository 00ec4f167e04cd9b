"""Engine tables: runs, steps, artefacts.

Revision ID: 0004_engine
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_engine"
down_revision = "0001_base"
branch_labels = ("engine",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engine_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("repo_path", sa.Text(), nullable=False),
        sa.Column("base_commit", sa.String(64), nullable=True),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("worktree_path", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(32), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("worker_host", sa.String(255), nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_runs")),
    )
    op.create_index(op.f("ix_engine_runs_status"), "engine_runs", ["status"])
    op.create_table(
        "engine_steps",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("step", sa.String(190), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("stop_reason", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("model_calls", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("transcript_ref", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_steps")),
    )
    op.create_index(op.f("ix_engine_steps_run_id"), "engine_steps", ["run_id"])
    op.create_table(
        "engine_artifacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_artifacts")),
    )
    op.create_index(op.f("ix_engine_artifacts_run_id"), "engine_artifacts", ["run_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_engine_artifacts_run_id"), table_name="engine_artifacts")
    op.drop_table("engine_artifacts")
    op.drop_index(op.f("ix_engine_steps_run_id"), table_name="engine_steps")
    op.drop_table("engine_steps")
    op.drop_index(op.f("ix_engine_runs_status"), table_name="engine_runs")
    op.drop_table("engine_runs")
