"""Drill-down: the records behind a figure's row references (``change:<id>``,
``deployment:<id>``, ``incident:<id>``, ``run:<id>``, ``ledger:<id>``, ``audit:<seq>``),
read back from the tables they came from, one dictionary of their telling fields each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.gateway import GatewayAuditEntry, GatewayLedgerEntry
from orchestra.store.tables.insight import (
    InsightChangeRow,
    InsightDeploymentRow,
    InsightIncidentRow,
)

NANO = 1_000_000_000


@dataclass(frozen=True)
class RowRecord:
    """One row a figure came from."""

    kind: str
    id: str
    fields: dict[str, Any]
    """Its telling fields (empty when the row is no longer stored)."""


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _change(row: InsightChangeRow) -> dict[str, Any]:
    return {
        "title": row.title,
        "author": row.author,
        "repo": row.repo,
        "state": row.state,
        "created": _when(row.created_at),
        "merged": _when(row.merged_at),
    }


def _deployment(row: InsightDeploymentRow) -> dict[str, Any]:
    return {
        "repo": row.repo,
        "environment": row.environment,
        "sha": row.sha[:12],
        "status": row.status,
        "created": _when(row.created_at),
        "finished": _when(row.finished_at),
    }


def _incident(row: InsightIncidentRow) -> dict[str, Any]:
    return {
        "title": row.title,
        "kind": row.kind,
        "repo": row.repo,
        "created": _when(row.created_at),
        "resolved": _when(row.resolved_at),
    }


def _run(row: RunRow) -> dict[str, Any]:
    return {
        "task": row.task[:200],
        "status": row.status,
        "branch": row.branch,
        "created": _when(row.created_at),
        "finished": _when(row.finished_at),
    }


def _ledger(row: GatewayLedgerEntry) -> dict[str, Any]:
    return {
        "developer": row.developer,
        "run": row.run_id,
        "model": row.served_model or row.requested_model,
        "cost_usd": row.cost_nano / NANO,
        "started": _when(row.started_at),
    }


def _audit(row: GatewayAuditEntry) -> dict[str, Any]:
    return {
        "at": _when(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
    }


_TABLES: dict[str, tuple[Any, Callable[[Any], dict[str, Any]]]] = {
    "change": (InsightChangeRow, _change),
    "deployment": (InsightDeploymentRow, _deployment),
    "incident": (InsightIncidentRow, _incident),
    "run": (RunRow, _run),
    "ledger": (GatewayLedgerEntry, _ledger),
    "audit": (GatewayAuditEntry, _audit),
}


def _fetch(session: Session, kind: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    table, describe = _TABLES[kind]
    key = "seq" if kind == "audit" else "id"  # the audit log is keyed by sequence number
    keys: Sequence[Any] = [int(i) for i in ids if i.isdigit()] if key == "seq" else ids
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 500):  # stay under the databases' bound-parameter limits
        chunk = keys[start : start + 500]
        for row in session.scalars(select(table).where(getattr(table, key).in_(chunk))):
            found[str(getattr(row, key))] = describe(row)
    return found


def row_records(db: Database, refs: Iterable[str]) -> list[RowRecord]:
    """The records behind ``refs``, in their order (an unknown kind or a row no longer
    stored comes back with no fields)."""
    parsed = [(kind, ident) for ref in refs for kind, _, ident in [ref.partition(":")]]
    by_kind: dict[str, list[str]] = {}
    for kind, ident in parsed:
        if kind in _TABLES:
            by_kind.setdefault(kind, []).append(ident)
    with db.session() as session:
        found = {kind: _fetch(session, kind, ids) for kind, ids in by_kind.items()}
    return [RowRecord(kind, ident, found.get(kind, {}).get(ident, {})) for kind, ident in parsed]
