"""Alerts: findings recorded once per unit and indicator (de-duplicated), escalated when
they open or worsen, acknowledged and resolved by people, resolved by a check that no
longer finds them; every step in the alert's history."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.analytics.early_warnings import Finding
from orchestra.analytics.errors import AnalyticsError
from orchestra.analytics.escalation import Message
from orchestra.store import Database
from orchestra.store.tables.insight import InsightAlertEventRow, InsightAlertRow

LIVE = ("open", "acknowledged")
FINGERPRINT_MAX = 255
"""The fingerprint column's width."""
SEVERITY = {"warning": 1, "critical": 2}


class AlertNotFound(AnalyticsError):
    """No alert has this id."""

    status = 404


@dataclass(frozen=True)
class Alert:
    """An alert as stored."""

    id: str
    unit: str
    indicator: str
    severity: str
    state: str
    value: float | None
    threshold: float | None
    summary: str
    first_seen: datetime
    last_seen: datetime
    acknowledged_by: str | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: InsightAlertRow) -> Alert:
        """From its row."""
        return cls(
            row.id,
            row.unit,
            row.indicator,
            row.severity,
            row.state,
            row.value,
            row.threshold,
            row.summary,
            row.first_seen,
            row.last_seen,
            row.acknowledged_by,
            row.resolved_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = dict(self.__dict__)
        for key in ("first_seen", "last_seen", "resolved_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data


Send = Callable[[str, Message], list[str]]
"""Unit, message -> one line per channel (``Escalator.send``)."""


def _event(
    session: Session,
    alert_id: str,
    event: str,
    at: datetime,
    actor: str | None = None,
    detail: str = "",
) -> None:
    session.add(
        InsightAlertEventRow(alert_id=alert_id, at=at, event=event, actor=actor, detail=detail)
    )


def _escalate(session: Session, row: InsightAlertRow, send: Send | None, at: datetime) -> None:
    if send is None:
        return
    message = Message(f"[{row.severity}] {row.indicator} in {row.unit}", row.summary)
    for line in send(row.unit, message):
        _event(
            session,
            row.id,
            "escalation_failed" if line.startswith("failed") else "escalated",
            at,
            detail=line,
        )


def _record_one(session: Session, finding: Finding, now: datetime, send: Send | None) -> str:
    fingerprint = f"{finding.unit}/{finding.indicator}"
    if finding.subject:  # one alert per budget of the unit
        fingerprint += f"/{finding.subject}"
    if len(fingerprint) > FINGERPRINT_MAX:  # long names: still one key per finding
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
        fingerprint = f"{fingerprint[: FINGERPRINT_MAX - 33]}#{digest}"
    row = session.scalars(
        select(InsightAlertRow).where(
            InsightAlertRow.fingerprint == fingerprint, InsightAlertRow.state.in_(LIVE)
        )
    ).first()
    detail = json.dumps(finding.detail, default=str)
    if row is None:
        row = InsightAlertRow(
            id=uuid.uuid4().hex,
            fingerprint=fingerprint,
            unit=finding.unit,
            indicator=finding.indicator,
            severity=finding.severity,
            state="open",
            value=finding.value,
            threshold=finding.threshold,
            summary=finding.summary,
            detail=detail,
            first_seen=now,
            last_seen=now,
        )
        session.add(row)
        session.flush()
        _event(session, row.id, "opened", now, detail=finding.summary)
        _escalate(session, row, send, now)
        return row.id
    worse = SEVERITY[finding.severity] > SEVERITY[row.severity]
    row.last_seen, row.value, row.summary, row.detail = now, finding.value, finding.summary, detail
    if worse:
        row.severity = finding.severity
        _event(session, row.id, "worsened", now, detail=finding.summary)
        if row.state == "open":  # an acknowledged alert is being handled: no new page
            _escalate(session, row, send, now)
    else:
        _event(session, row.id, "seen", now)
    return row.id


def record_findings(
    db: Database,
    unit: str,
    findings: Iterable[Finding],
    *,
    now: datetime | None = None,
    send: Send | None = None,
) -> list[str]:
    """Store ``unit``'s findings of one check: a finding with a live alert updates it (and
    escalates only if it worsened), a new one opens and escalates an alert; live alerts of
    ``unit`` the check no longer finds are resolved. The ids of the live alerts."""
    now = now or datetime.now(UTC)
    with db.session() as session:
        ids = [_record_one(session, f, now, send) for f in findings]
        stale = select(InsightAlertRow).where(
            InsightAlertRow.unit == unit,
            InsightAlertRow.state.in_(LIVE),
            InsightAlertRow.id.not_in(ids) if ids else InsightAlertRow.id.isnot(None),
        )
        for row in session.scalars(stale):
            row.state, row.resolved_at = "resolved", now
            _event(
                session,
                row.id,
                "resolved",
                now,
                actor="check",
                detail="the indicator no longer shows the trend",
            )
    return ids


def _change(db: Database, alert_id: str, actor: str, state: str) -> Alert:
    now = datetime.now(UTC)
    with db.session() as session:
        row = session.get(InsightAlertRow, alert_id)
        if row is None:
            raise AlertNotFound(f"no alert {alert_id!r}", hint="`orchestra insight alerts list`")
        if row.state == "resolved":
            raise AnalyticsError(
                f"alert {alert_id} is already resolved", hint="a new finding opens a new alert"
            )
        row.state = state
        if state == "acknowledged":
            row.acknowledged_by = actor
        else:
            row.resolved_at = now
        _event(session, row.id, state, now, actor=actor)
        return Alert.of(row)


def acknowledge(db: Database, alert_id: str, actor: str) -> Alert:
    """Mark an alert as being handled by ``actor`` (no more escalations as it worsens)."""
    return _change(db, alert_id, actor, "acknowledged")


def resolve(db: Database, alert_id: str, actor: str) -> Alert:
    """Close an alert by hand."""
    return _change(db, alert_id, actor, "resolved")


def list_alerts(db: Database, *, state: str | None = None) -> list[Alert]:
    """Alerts, newest first, optionally in one state."""
    query = select(InsightAlertRow).order_by(InsightAlertRow.last_seen.desc())
    if state is not None:
        query = query.where(InsightAlertRow.state == state)
    with db.session() as session:
        return [Alert.of(row) for row in session.scalars(query)]


def alert_history(db: Database, alert_id: str) -> list[dict[str, Any]]:
    """Every event of an alert, oldest first."""
    with db.session() as session:
        if session.get(InsightAlertRow, alert_id) is None:
            raise AlertNotFound(f"no alert {alert_id!r}", hint="`orchestra insight alerts list`")
        events = session.scalars(
            select(InsightAlertEventRow)
            .where(InsightAlertEventRow.alert_id == alert_id)
            .order_by(InsightAlertEventRow.id)
        )
        return [
            {"at": e.at.isoformat(), "event": e.event, "actor": e.actor, "detail": e.detail}
            for e in events
        ]
