"""Gateway idempotency keys: model calls answered once per (account, key).

Revision ID: idempotency_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "idempotency_0001"
down_revision = "0001_base"
branch_labels = ("idempotency",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_idempotency_keys",
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("account", "key", name=op.f("pk_gateway_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_gateway_idempotency_keys_expires_at"),
        "gateway_idempotency_keys",
        ["expires_at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_gateway_idempotency_keys_expires_at"), table_name="gateway_idempotency_keys"
    )
    op.drop_table("gateway_idempotency_keys")
