"""Organisation tables: organisation, units, developers, guild members.

Revision ID: 0002_org
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_org"
down_revision = "0001_base"
branch_labels = ("org",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_organisation")),
    )
    op.create_table(
        "org_units",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_org_units")),
    )
    op.create_table(
        "org_developers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_org_developers")),
    )
    op.create_table(
        "org_guild_members",
        sa.Column("guild", sa.String(length=64), nullable=False),
        sa.Column("developer", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("guild", "developer", name=op.f("pk_org_guild_members")),
    )


def downgrade() -> None:
    op.drop_table("org_guild_members")
    op.drop_table("org_developers")
    op.drop_table("org_units")
    op.drop_table("org_organisation")
