"""Organisation-wide agent slots: one request per agent step, and the quotas in force.

Revision ID: slots_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "slots_0001"
down_revision = "0001_base"
branch_labels = ("slots",)
depends_on = None

_TS = sa.DateTime(timezone=True)
_REQUESTS = "engine_slot_requests"


def upgrade() -> None:
    op.create_table(
        _REQUESTS,
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("developer", sa.String(128), nullable=False),
        sa.Column("squad", sa.String(128), nullable=False),
        sa.Column("tribe", sa.String(128), nullable=False),
        sa.Column("region", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(128), nullable=False),
        sa.Column("requested_at", _TS, nullable=False),
        sa.Column("granted_at", _TS, nullable=True),
        sa.Column("released_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_slot_requests")),
    )
    for column in ("seq", "developer", "state", "worker"):
        op.create_index(op.f(f"ix_{_REQUESTS}_{column}"), _REQUESTS, [column])
    op.create_table(
        "engine_slot_allocation",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("quotas", sa.Text(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engine_slot_allocation")),
    )


def downgrade() -> None:
    op.drop_table("engine_slot_allocation")
    for column in ("seq", "developer", "state", "worker"):
        op.drop_index(op.f(f"ix_{_REQUESTS}_{column}"), table_name=_REQUESTS)
    op.drop_table(_REQUESTS)
