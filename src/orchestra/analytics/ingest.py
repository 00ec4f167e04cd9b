"""Storing records: each event updates what is known of its change, deployment or
incident, so events may arrive in any order and more than once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestra.analytics.records import (
    FINISHED_STATUSES,
    ChangeRecord,
    DeploymentRecord,
    IncidentRecord,
    Record,
)
from orchestra.store import Database
from orchestra.store.tables.insight import (
    InsightChangeRow,
    InsightDeliveryRow,
    InsightDeploymentRow,
    InsightIncidentRow,
)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    known = [t for t in (a, b) if t is not None]
    return min(known) if known else None


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _store_change(session: Session, rec: ChangeRecord) -> None:
    row = session.get(InsightChangeRow, rec.id)
    if row is None:
        row = InsightChangeRow(
            id=rec.id,
            source=rec.source,
            repo=rec.repo,
            number=rec.number,
            author=rec.author or "",
            created_at=rec.created_at,
        )
        session.add(row)
    row.title = rec.title
    row.author = rec.author or row.author
    row.branch = rec.branch or row.branch
    if row.state != "merged":
        row.state = rec.state
    row.created_at = min(_aware(row.created_at) or rec.created_at, rec.created_at)
    row.merged_at = _aware(row.merged_at) or rec.merged_at
    row.first_review_at = _earliest(_aware(row.first_review_at), rec.first_review_at)
    row.merge_commit_sha = row.merge_commit_sha or rec.merge_commit_sha
    row.additions = rec.additions if rec.additions is not None else row.additions
    row.deletions = rec.deletions if rec.deletions is not None else row.deletions


def _store_deployment(session: Session, rec: DeploymentRecord) -> None:
    row = session.get(InsightDeploymentRow, rec.id)
    if row is None:
        row = InsightDeploymentRow(
            id=rec.id,
            source=rec.source,
            repo=rec.repo,
            environment=rec.environment,
            sha=rec.sha,
            status=rec.status,
            created_at=rec.created_at,
        )
        session.add(row)
    row.created_at = min(_aware(row.created_at) or rec.created_at, rec.created_at)
    finished = _aware(row.finished_at)
    if rec.status in FINISHED_STATUSES:
        if finished is None or rec.status_at >= finished:
            row.status, row.finished_at = rec.status, rec.status_at
    elif finished is None:
        row.status = rec.status


def _store_incident(session: Session, rec: IncidentRecord) -> None:
    row = session.get(InsightIncidentRow, rec.id)
    if row is None:
        row = InsightIncidentRow(id=rec.id, source=rec.source, repo=rec.repo, number=rec.number)
        session.add(row)
    row.kind, row.title, row.body = rec.kind, rec.title, rec.body
    row.created_at = rec.created_at
    row.resolved_at = rec.resolved_at


def store_records(session: Session, records: Iterable[Record]) -> int:
    """Apply ``records`` in ``session``; the number applied."""
    count = 0
    for rec in records:
        if isinstance(rec, ChangeRecord):
            _store_change(session, rec)
        elif isinstance(rec, DeploymentRecord):
            _store_deployment(session, rec)
        else:
            _store_incident(session, rec)
        session.flush()
        count += 1
    return count


def store_delivery(db: Database, delivery_id: str, event: str, records: list[Record]) -> bool:
    """Apply one webhook delivery's records with its delivery row, in one transaction;
    ``False`` (nothing applied) when the delivery was already taken in."""
    try:
        with db.session() as session:
            if session.get(InsightDeliveryRow, delivery_id) is not None:
                return False
            now = datetime.now(UTC)
            session.add(InsightDeliveryRow(id=delivery_id, event=event, received_at=now))
            store_records(session, records)
    except IntegrityError:  # the same delivery, taken in concurrently by another worker
        return False
    return True
