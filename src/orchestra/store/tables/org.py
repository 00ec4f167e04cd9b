"""Tables owned by the org domain.

One database holds one organisation. Units and developers are keyed by their names,
which other domains use as string ids (``team``, ``developer``); no foreign keys leave
this domain.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class OrgOrganisationRow(Base):
    """The organisation itself (a single row, ``id = 1``)."""

    __tablename__ = "org_organisation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)


class OrgUnitRow(Base):
    """A division, tribe, squad or guild."""

    __tablename__ = "org_units"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer)
    """Order in the configuration, so listings follow the file."""


class OrgDeveloperRow(Base):
    """A developer, their home unit and role."""

    __tablename__ = "org_developers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    position: Mapped[int] = mapped_column(Integer)


class OrgGuildMemberRow(Base):
    """Membership of a developer in a guild."""

    __tablename__ = "org_guild_members"

    guild: Mapped[str] = mapped_column(String(64), primary_key=True)
    developer: Mapped[str] = mapped_column(String(64), primary_key=True)
