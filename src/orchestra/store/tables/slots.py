"""Tables of the organisation-wide agent slots (``orchestra.engine.slots``).

``engine_slot_requests`` holds one row per agent step that wants one of the organisation's
agent slots: who asks (developer, squad, tribe, region), when, and whether it waits, holds
a slot or gave it back. Its granted and released rows are also the recorded history of
agent-seconds per unit that predictive allocation forecasts from.
``engine_slot_allocation`` holds the quotas in force (one row, ``org``); dispatchers lock
it (``SELECT ... FOR UPDATE`` on PostgreSQL) so that one grants at a time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class SlotRequestRow(Base):
    """One agent step's request for an organisation-wide agent slot."""

    __tablename__ = "engine_slot_requests"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """The agent step's workflow id: a replayed step finds its own row."""
    seq: Mapped[int] = mapped_column(Integer, index=True)
    """Increasing with each request (first come, first served, whatever the hosts' clocks)."""
    developer: Mapped[str] = mapped_column(String(128), index=True)
    squad: Mapped[str] = mapped_column(String(128))
    tribe: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), index=True)
    """``waiting``, ``granted`` or ``released``."""
    worker: Mapped[str] = mapped_column(String(128), index=True)
    """The executor id of the worker running the step (the latest one, after a recovery)."""
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    granted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SlotAllocationRow(Base):
    """The quotas in force (one row, ``org``) and when they are next recomputed."""

    __tablename__ = "engine_slot_allocation"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    quotas: Mapped[str] = mapped_column(Text)
    """JSON: unit -> slots."""
    next_at: Mapped[float] = mapped_column(Float)
    """Epoch seconds after which dynamic and predictive quotas are recomputed."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
