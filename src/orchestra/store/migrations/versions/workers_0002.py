"""Engine workers record the scheduling settings they grant agent slots under, so a worker
whose settings differ from a live worker's is refused at start.

Revision ID: workers_0002
Revises: workers_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "workers_0002"
down_revision = "workers_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("engine_workers") as batch:
        batch.add_column(sa.Column("scheduling", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engine_workers") as batch:
        batch.drop_column("scheduling")
