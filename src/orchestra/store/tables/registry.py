"""Tables owned by the agent registry (written by ``orchestra.registry``).

Agents and units are referred to by name, as everywhere else: a pool names units of the
organisation tree without a foreign key, so syncing the tree never cascades into pools.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class RegistryVersion(Base):
    """One published version of an agent definition and where it is in its review."""

    __tablename__ = "registry_versions"

    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1, 2, 3 ... per agent, in publishing order."""
    state: Mapped[str] = mapped_column(String(16), index=True)
    """``pending``, ``approved``, ``rejected``, ``deprecated`` or ``yanked``."""
    definition: Mapped[str] = mapped_column(Text)
    """The agent file as published (front matter and prompt)."""
    digest: Mapped[str] = mapped_column(String(64))
    """SHA-256 of :attr:`definition`."""
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    tags: Mapped[str] = mapped_column(Text)
    """The definition's specialties, space-separated (searched)."""
    publisher: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    changed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Who made the latest state change (approval, rejection, deprecation, yank)."""
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    """The reason given with the latest state change."""


class RegistryPool(Base):
    """The agents one unit allows (its own list; the effective pool is inherited)."""

    __tablename__ = "registry_pools"

    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    entries: Mapped[str] = mapped_column(Text)
    """JSON list of agent names, ``category:<name>`` entries or ``*``."""
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
