"""The three entity streams as plain values: changes, deployments, incidents.

Webhook payloads and imported files are turned into these, then stored by
:mod:`orchestra.analytics.ingest`; nothing else about a payload is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ChangeRecord:
    """A pull request or merge request as one event saw it."""

    id: str
    source: str
    repo: str
    number: int
    title: str
    author: str | None
    """``None`` when the event does not say who opened it (GitLab after the opening)."""
    branch: str | None
    state: str
    created_at: datetime
    merged_at: datetime | None = None
    first_review_at: datetime | None = None
    merge_commit_sha: str | None = None
    additions: int | None = None
    deletions: int | None = None


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment and the status one event reported for it."""

    id: str
    source: str
    repo: str
    environment: str
    sha: str
    status: str
    """Normalised: ``success``, ``failure``, ``error``, ``pending``, ``in_progress``,
    ``canceled``, ``inactive``."""
    created_at: datetime
    status_at: datetime
    """When this status was reported."""


@dataclass(frozen=True)
class IncidentRecord:
    """An issue labelled as an incident, a bug or a security finding."""

    id: str
    source: str
    repo: str
    number: int
    kind: str
    title: str
    body: str
    created_at: datetime
    resolved_at: datetime | None


Record = ChangeRecord | DeploymentRecord | IncidentRecord
"""Anything a payload turns into."""

FINISHED_STATUSES = frozenset({"success", "failure", "error", "canceled", "inactive"})
"""Deployment statuses after which it no longer runs."""
FAILED_STATUSES = frozenset({"failure", "error"})
"""Deployment statuses that count as a failed deployment by themselves."""
