"""Identity: login sessions ended by a logout (shared by every worker).

Revision ID: identity_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0001"
down_revision = "0001_base"
branch_labels = ("identity",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_revoked_sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_identity_revoked_sessions")),
    )
    op.create_index(
        op.f("ix_identity_revoked_sessions_expires_at"),
        "identity_revoked_sessions",
        ["expires_at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_identity_revoked_sessions_expires_at"), table_name="identity_revoked_sessions"
    )
    op.drop_table("identity_revoked_sessions")
