"""Gateway accounting: keys, budgets, reservations, ledger, audit chain, rate counters.

Revision ID: 0003_gateway
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_gateway"
down_revision = "0001_base"
branch_labels = ("gateway",)
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("developer", sa.String(200), nullable=False),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("replaced_by", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_gateway_keys_secret_hash"),
    )
    op.create_index("ix_gateway_keys_developer", "gateway_keys", ["developer"])

    op.create_table(
        "gateway_budgets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("cap_nano", sa.BigInteger(), nullable=False),
        sa.Column("soft_pct", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_budgets"),
        sa.UniqueConstraint("name", name="uq_gateway_budgets_name"),
    )
    op.create_index("ix_gateway_budgets_scope_subject", "gateway_budgets", ["scope", "subject"])

    op.create_table(
        "gateway_budget_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("budget_id", sa.String(40), nullable=False),
        sa.Column("period_start", sa.String(32), nullable=False),
        sa.Column("cap_nano", sa.BigInteger(), nullable=False),
        sa.Column("spent_nano", sa.BigInteger(), nullable=False),
        sa.Column("reserved_nano", sa.BigInteger(), nullable=False),
        sa.Column("alerted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_budget_windows"),
    )
    op.create_index(
        "ux_gateway_budget_windows_budget_period",
        "gateway_budget_windows",
        ["budget_id", "period_start"],
        unique=True,
    )

    op.create_table(
        "gateway_reservation_holds",
        sa.Column("reservation_id", sa.String(40), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("reservation_id", "window_id", name="pk_gateway_reservation_holds"),
    )
    op.create_index(
        "ix_gateway_reservation_holds_expires_at", "gateway_reservation_holds", ["expires_at"]
    )

    op.create_table(
        "gateway_ledger",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=False),
        sa.Column("org", sa.String(200), nullable=True),
        sa.Column("division", sa.String(200), nullable=True),
        sa.Column("tribe", sa.String(200), nullable=True),
        sa.Column("squad", sa.String(200), nullable=True),
        sa.Column("developer", sa.String(200), nullable=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("agent", sa.String(200), nullable=True),
        sa.Column("run_id", sa.String(200), nullable=True),
        sa.Column("step", sa.String(200), nullable=True),
        sa.Column("tier", sa.String(40), nullable=True),
        sa.Column("requested_model", sa.String(200), nullable=True),
        sa.Column("served_model", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nano", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("fallback_path", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("error_type", sa.String(200), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_ledger"),
    )
    op.create_index("ix_gateway_ledger_started_at", "gateway_ledger", ["started_at"])

    op.create_table(
        "gateway_audit",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_gateway_audit"),
    )
    op.create_table(
        "gateway_audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_audit_head"),
    )
    op.create_table(
        "gateway_rate_counters",
        sa.Column("subject", sa.String(250), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "window_start", name="pk_gateway_rate_counters"),
    )


def downgrade() -> None:
    for table in (
        "gateway_rate_counters",
        "gateway_audit_head",
        "gateway_audit",
        "gateway_ledger",
        "gateway_reservation_holds",
        "gateway_budget_windows",
        "gateway_budgets",
        "gateway_keys",
    ):
        op.drop_table(table)
