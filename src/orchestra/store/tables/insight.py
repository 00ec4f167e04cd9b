"""Tables owned by the analytics domain (``orchestra.analytics``): the three entity
streams DORA needs (changes, deployments, incidents), the repositories' commits, the links
between them, and the webhook deliveries already taken (for idempotent redelivery).

Rows of other domains (runs, developers, ledger entries) are referred to by id string,
never by foreign key. A link records how it was made: ``exact`` where Orchestra made it
(the run's branch, the run's commits, a deployment of the very merge commit, an issue
naming its change), ``ancestry`` where ``git merge-base --is-ancestor`` established it,
``time`` where an incident was tied to the last deployment before it (reported as such).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class InsightCommitRow(Base):
    """One commit of a repository, read from ``git log``."""

    __tablename__ = "insight_commits"

    repo: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha: Mapped[str] = mapped_column(String(64), primary_key=True)
    author_name: Mapped[str] = mapped_column(String(200))
    author_email: Mapped[str] = mapped_column(String(320), index=True)
    authored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    committed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    parents: Mapped[str] = mapped_column(Text, default="")
    """Parent shas separated by spaces."""
    is_merge: Mapped[bool] = mapped_column(Boolean, default=False)
    additions: Mapped[int] = mapped_column(Integer, default=0)
    deletions: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str] = mapped_column(Text, default="")


class InsightGitCursorRow(Base):
    """Where the last import of a repository's history stopped (the tips it had read)."""

    __tablename__ = "insight_git_cursors"

    repo: Mapped[str] = mapped_column(String(200), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    tips: Mapped[str] = mapped_column(Text, default="")
    """The shas every ref pointed at, separated by spaces: the next import starts there."""
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InsightChangeRow(Base):
    """A pull request (GitHub) or merge request (GitLab)."""

    __tablename__ = "insight_changes"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """``<source>:<repo>#<number>``."""
    source: Mapped[str] = mapped_column(String(16))
    repo: Mapped[str] = mapped_column(String(200), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200), index=True)
    branch: Mapped[str | None] = mapped_column(String(255), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    """``open``, ``merged`` or ``closed``."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    merged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    first_review_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    merge_commit_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    additions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deletions: Mapped[int | None] = mapped_column(Integer, nullable=True)


class InsightDeploymentRow(Base):
    """A deployment of a commit to an environment, with its latest status."""

    __tablename__ = "insight_deployments"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """``<source>:<repo>:<deployment id>``."""
    source: Mapped[str] = mapped_column(String(16))
    repo: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    sha: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    """``success``, ``failure``, ``error``, ``pending``, ``in_progress`` ..."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InsightIncidentRow(Base):
    """An issue labelled as an incident, a bug or a security finding."""

    __tablename__ = "insight_incidents"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """``<source>:<repo>!<number>``."""
    source: Mapped[str] = mapped_column(String(16))
    repo: Mapped[str] = mapped_column(String(200), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    """``incident``, ``bug`` or ``security``."""
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InsightLinkRow(Base):
    """One edge of task → run → commit → change → deployment → incident."""

    __tablename__ = "insight_links"

    src_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    src_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    dst_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    dst_id: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    method: Mapped[str] = mapped_column(String(16))
    """``exact``, ``ancestry`` or ``time`` (see the module's docstring)."""


class InsightDeliveryRow(Base):
    """A webhook delivery already processed (a redelivery is acknowledged, not re-applied)."""

    __tablename__ = "insight_deliveries"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """``<source>:<delivery id>``."""
    event: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InsightAlertRow(Base):
    """An early warning: one per unit and indicator while it is open or acknowledged."""

    __tablename__ = "insight_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(255), index=True)
    """``<unit>/<indicator>``: a new finding with an open alert's fingerprint updates it."""
    unit: Mapped[str] = mapped_column(String(200))
    indicator: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    """``warning`` (a significant worsening trend) or ``critical`` (and past the threshold)."""
    state: Mapped[str] = mapped_column(String(16), index=True)
    """``open``, ``acknowledged`` or ``resolved``."""
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    """JSON: the series, the trend test's statistics."""
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InsightAlertEventRow(Base):
    """The history of an alert: opened, seen again, escalated, acknowledged, resolved."""

    __tablename__ = "insight_alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
