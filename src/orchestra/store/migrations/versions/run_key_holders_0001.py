"""Run keys record the worker holding them, so recovery revokes only a dead worker's.

Revision ID: run_key_holders_0001
Revises: 0003_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "run_key_holders_0001"
down_revision = "0003_gateway"
branch_labels = ("run_key_holders",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_keys") as batch:
        batch.add_column(sa.Column("holder", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_keys") as batch:
        batch.drop_column("holder")
