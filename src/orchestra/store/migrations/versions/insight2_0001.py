"""Insight surveys (rounds, participants, anonymous answers) and transition-plan snapshots.

Revision ID: insight2_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "insight2_0001"
down_revision = "0001_base"
branch_labels = ("insight2",)
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "insight_survey_rounds",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("closed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_survey_rounds")),
    )
    op.create_table(
        "insight_survey_participants",
        sa.Column("round_id", sa.String(64), nullable=False),
        sa.Column("developer", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint(
            "round_id", "developer", name=op.f("pk_insight_survey_participants")
        ),
    )
    op.create_table(
        "insight_survey_answers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("round_id", sa.String(64), nullable=False),
        sa.Column("division", sa.String(200), nullable=True),
        sa.Column("tribe", sa.String(200), nullable=True),
        sa.Column("squad", sa.String(200), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("recommend", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_survey_answers")),
    )
    op.create_index(
        op.f("ix_insight_survey_answers_round_id"), "insight_survey_answers", ["round_id"]
    )
    op.create_table(
        "insight_plan_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("unit", sa.String(200), nullable=False),
        sa.Column("current_stage", sa.String(32), nullable=False),
        sa.Column("target_stage", sa.String(32), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("readiness", sa.Float(), nullable=True),
        sa.Column("criteria_met", sa.Integer(), nullable=False),
        sa.Column("criteria_known", sa.Integer(), nullable=False),
        sa.Column("criteria_total", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_plan_snapshots")),
    )
    op.create_index(op.f("ix_insight_plan_snapshots_unit"), "insight_plan_snapshots", ["unit"])
    op.create_index(op.f("ix_insight_plan_snapshots_at"), "insight_plan_snapshots", ["at"])


def downgrade() -> None:
    for table in (
        "insight_plan_snapshots",
        "insight_survey_answers",
        "insight_survey_participants",
        "insight_survey_rounds",
    ):
        op.drop_table(table)
