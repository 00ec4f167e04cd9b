"""Tables of the merge queue and of file ownership between runs (``orchestra.landing``).

``landing_file_claims`` records, when a run's plan is made, the files each run owns;
``landing_queue`` holds the branches waiting to land, in order (``id``); a row of
``landing_locks`` is the one lander of a repository (its primary key makes the claim atomic
on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class FileClaimRow(Base):
    """A file a run's plan owns, in one repository."""

    __tablename__ = "landing_file_claims"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    repo: Mapped[str] = mapped_column(String(1000), index=True)
    """The repository's resolved path."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LandingEntryRow(Base):
    """A branch in a repository's merge queue, and what became of it."""

    __tablename__ = "landing_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Increasing: the queue's order (first in, first landed)."""
    repo: Mapped[str] = mapped_column(String(1000), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    branch: Mapped[str] = mapped_column(String(255))
    onto: Mapped[str] = mapped_column(String(255))
    """The branch it lands on (``main``)."""
    status: Mapped[str] = mapped_column(String(32), index=True)
    """``queued``, ``landing``, ``landed``, ``conflict``, ``failed`` or ``error``."""
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    files: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list: the files of a rebase conflict."""
    overlaps: Mapped[str] = mapped_column(Text, default="{}")
    """JSON object: other runs owning the same files (run id -> files) when it was queued."""
    onto_before: Mapped[str | None] = mapped_column(String(64), nullable=True)
    landed_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LandingLockRow(Base):
    """The one lander working on a repository's queue (absent: nobody is)."""

    __tablename__ = "landing_locks"

    repo: Mapped[str] = mapped_column(String(1000), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    """``host:pid:random``: who holds the lock."""
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
