"""Insight tables: commits, git cursors, changes, deployments, incidents, links, deliveries,
alerts and their history.

Revision ID: insight_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "insight_0001"
down_revision = "0001_base"
branch_labels = ("insight",)
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "insight_commits",
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("author_name", sa.String(200), nullable=False),
        sa.Column("author_email", sa.String(320), nullable=False),
        sa.Column("authored_at", _TS, nullable=False),
        sa.Column("committed_at", _TS, nullable=False),
        sa.Column("parents", sa.Text(), nullable=False),
        sa.Column("is_merge", sa.Boolean(), nullable=False),
        sa.Column("additions", sa.Integer(), nullable=False),
        sa.Column("deletions", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("repo", "sha", name=op.f("pk_insight_commits")),
    )
    op.create_index(op.f("ix_insight_commits_author_email"), "insight_commits", ["author_email"])
    op.create_index(op.f("ix_insight_commits_authored_at"), "insight_commits", ["authored_at"])
    op.create_table(
        "insight_git_cursors",
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("tips", sa.Text(), nullable=False),
        sa.Column("imported_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("repo", name=op.f("pk_insight_git_cursors")),
    )
    op.create_table(
        "insight_changes",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("merged_at", _TS, nullable=True),
        sa.Column("first_review_at", _TS, nullable=True),
        sa.Column("merge_commit_sha", sa.String(64), nullable=True),
        sa.Column("additions", sa.Integer(), nullable=True),
        sa.Column("deletions", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_changes")),
    )
    op.create_index(op.f("ix_insight_changes_repo"), "insight_changes", ["repo"])
    op.create_index(op.f("ix_insight_changes_author"), "insight_changes", ["author"])
    op.create_table(
        "insight_deployments",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_deployments")),
    )
    op.create_index(op.f("ix_insight_deployments_repo"), "insight_deployments", ["repo"])
    op.create_index(
        op.f("ix_insight_deployments_created_at"), "insight_deployments", ["created_at"]
    )
    op.create_table(
        "insight_incidents",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_incidents")),
    )
    op.create_index(op.f("ix_insight_incidents_repo"), "insight_incidents", ["repo"])
    op.create_index(op.f("ix_insight_incidents_created_at"), "insight_incidents", ["created_at"])
    op.create_table(
        "insight_links",
        sa.Column("src_kind", sa.String(16), nullable=False),
        sa.Column("src_id", sa.String(255), nullable=False),
        sa.Column("dst_kind", sa.String(16), nullable=False),
        sa.Column("dst_id", sa.String(255), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint(
            "src_kind", "src_id", "dst_kind", "dst_id", name=op.f("pk_insight_links")
        ),
    )
    op.create_index(op.f("ix_insight_links_dst_id"), "insight_links", ["dst_id"])
    op.create_table(
        "insight_deliveries",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_deliveries")),
    )

    op.create_table(
        "insight_alerts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(200), nullable=False),
        sa.Column("indicator", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("first_seen", _TS, nullable=False),
        sa.Column("last_seen", _TS, nullable=False),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_alerts")),
    )
    op.create_index(op.f("ix_insight_alerts_fingerprint"), "insight_alerts", ["fingerprint"])
    op.create_index(op.f("ix_insight_alerts_state"), "insight_alerts", ["state"])
    op.create_table(
        "insight_alert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(40), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_alert_events")),
    )
    op.create_index(op.f("ix_insight_alert_events_alert_id"), "insight_alert_events", ["alert_id"])


def downgrade() -> None:
    for table in (
        "insight_alert_events",
        "insight_alerts",
        "insight_deliveries",
        "insight_links",
        "insight_incidents",
        "insight_deployments",
        "insight_changes",
        "insight_git_cursors",
        "insight_commits",
    ):
        op.drop_table(table)
