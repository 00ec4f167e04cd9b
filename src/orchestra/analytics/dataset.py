"""The rows a unit's figures are computed from, read once per question.

Changes, deployments and incidents are small streams and are read whole for the unit;
the ledger's sums (per developer-month, per run) come from its rollups, maintained as it
is written (:func:`orchestra.accounting.ledger_totals`), and only its row ids for the
drill-down are read from the raw rows, capped at :data:`DRILL_DOWN_CAP` (the figure says
how many there were).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select, true, union_all
from sqlalchemy.orm import Session

from orchestra.accounting import LedgerMatch, ledger_totals
from orchestra.accounting.ledger_totals import above_mark, read_above_mark
from orchestra.accounting.rollups import read_mark
from orchestra.analytics.scope import Period, Scope
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.gateway import GatewayLedgerEntry as Ledger
from orchestra.store.tables.insight import (
    InsightChangeRow,
    InsightDeploymentRow,
    InsightIncidentRow,
    InsightLinkRow,
)
from orchestra.store.tables.ledger_rollups import ROLLUP_TABLES

DRILL_DOWN_CAP = 1000
"""Ledger row ids returned with a figure at most (the total is always given)."""

PRODUCTION = frozenset({"production", "prod"})
"""Default names of production environments (``insight.production``)."""


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC (SQLite returns naive datetimes that were stored as UTC)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@dataclass
class RunFacts:
    """What a run's records say: status, when it finished, its report's measurements."""

    id: str
    status: str
    finished_at: datetime | None
    cost_nano: int = 0
    coverage: float | None = None
    findings: int | None = None
    """Bandit findings; ``None`` when the scan did not run."""
    red_gate: bool = False
    """Whether the run's report records the red gate (its new tests failed first)."""


@dataclass
class Dataset:
    """A unit's rows for one period."""

    scope: Scope
    period: Period
    changes: list[InsightChangeRow] = field(default_factory=list)
    deployments: list[InsightDeploymentRow] = field(default_factory=list)
    incidents: list[InsightIncidentRow] = field(default_factory=list)
    links: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    """(src kind, src id) -> [(dst kind, dst id)], both directions."""
    runs: dict[str, RunFacts] = field(default_factory=dict)
    """The runs finished in the period and those linked to the unit's changes (a unit's:
    those with ledger rows of the unit), with their cost in the unit."""
    has_runs: bool = False
    """Whether the unit has any run at all (in the period or not)."""
    ledger_nano: int = 0
    ledger_ids: list[str] = field(default_factory=list)
    ledger_rows: int = 0
    developer_months: dict[tuple[str, str], int] = field(default_factory=dict)
    """(developer, YYYY-MM) -> cost in nano-dollars, in the period."""

    def linked(self, kind: str, ident: str, to: str) -> list[str]:
        """Ids of ``to`` rows linked to (``kind``, ``ident``), either direction."""
        return [dst for k, dst in self.links.get((kind, ident), []) if k == to]


def ledger_filter(scope: Scope) -> ColumnElement[bool]:
    """The ledger rows of ``scope`` (by their own unit columns)."""
    column = {
        "developer": Ledger.developer,
        "squad": Ledger.squad,
        "tribe": Ledger.tribe,
        "division": Ledger.division,
    }.get(scope.kind)
    return true() if column is None else column == scope.name


def _read_report(run: RunRow) -> dict[str, Any]:
    if not run.report_path:
        return {}
    try:
        data = json.loads(Path(run.report_path).with_name("report.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_facts(run: Any, cost: int) -> RunFacts:
    """``run``: a row of :func:`read_runs` (or a :class:`RunRow`)."""
    report = _read_report(run)
    coverage = report.get("coverage") or {}
    security = report.get("security") or {}
    percent = coverage.get("percent") if isinstance(coverage, dict) else None
    findings = None
    if isinstance(security, dict) and security.get("ran"):
        findings = len(security.get("findings") or [])
    return RunFacts(
        run.id,
        run.status,
        aware(run.finished_at),
        cost,
        float(percent) if isinstance(percent, int | float) else None,
        findings,
        report.get("red") is not None,
    )


def _matching(table: Any, where: Sequence[LedgerMatch]) -> list[ColumnElement[bool]]:
    return [or_(*(table.c[col] == m.value for col in m.columns)) for m in where]


def _costs(runs: Select[Any], where: Sequence[LedgerMatch], mark: int | None, dialect: str) -> Any:
    """Per run of ``runs`` (a query of run ids): its cost in the ledger rows of the unit
    ``where``, summed in the database. From the per-run rollup (keyed by the run first: a
    run's rows are found together) and the ledger rows above the rollups' ``mark``; with
    ``mark=None``, a plain ``GROUP BY`` over the raw rows (what the rollup replaces; the
    benchmark compares the two)."""
    if mark is None:
        c = Ledger.__table__.c
        query = select(c.run_id, func.sum(c.cost_nano).label("cost_nano"))
        query = query.where(c.run_id.in_(runs), *_matching(Ledger.__table__, where))
        return query.group_by(c.run_id).subquery("run_costs")
    table = ROLLUP_TABLES["ledger_rollup_run"]
    rolled = select(table.c.run_id, table.c.cost_nano).where(
        table.c.run_id.in_(runs), *_matching(table, where)
    )
    tail = select(Ledger.run_id, Ledger.cost_nano).where(*above_mark(mark, where, dialect))
    both = union_all(rolled, tail).subquery("run_rows")
    query = select(both.c.run_id, func.sum(both.c.cost_nano).label("cost_nano"))
    return query.group_by(both.c.run_id).subquery("run_costs")


class RunCost(NamedTuple):
    """A run and its ledger cost, as :func:`read_runs` reads them."""

    id: str
    status: str
    finished_at: datetime | None
    report_path: str | None
    cost_nano: int


def read_runs(
    conn: Connection,
    where: Sequence[LedgerMatch],
    since: datetime,
    until: datetime,
    also: Collection[str] = (),
    *,
    raw: bool = False,
) -> list[RunCost]:
    """The runs finished in ``[since, until)`` and the runs ``also`` names, each with its
    ledger cost (rows ``id, status, finished_at, report_path, cost_nano``). With ``where``
    (a unit), only the runs with ledger rows of the unit, and their cost in the unit;
    without, every such run (cost 0 when it has no row). One query for the period's runs
    (the ``finished_at`` index finds them), one per 500 ``also`` runs; the sums are taken
    in the database."""
    chosen = [and_(RunRow.finished_at >= since, RunRow.finished_at < until)]
    named = sorted(set(also))
    chosen += [RunRow.id.in_(named[i : i + 500]) for i in range(0, len(named), 500)]
    run = (RunRow.id, RunRow.status, RunRow.finished_at, RunRow.report_path)
    dialect = conn.dialect.name
    out: dict[str, Any] = {}
    for condition in chosen:

        def query(
            mark: int | None, mark_now: Any = None, condition: Any = condition
        ) -> Select[Any]:
            costs = _costs(select(RunRow.id).where(condition), where, mark, dialect)
            cost = costs.c.cost_nano if where else func.coalesce(costs.c.cost_nano, 0)
            chosen_runs = select(*run, cost.label("cost_nano")).where(condition)
            chosen_runs = chosen_runs.join(costs, costs.c.run_id == RunRow.id, isouter=not where)
            return chosen_runs if mark_now is None else chosen_runs.add_columns(mark_now)

        rows = conn.execute(query(None)).all() if raw else read_above_mark(conn, query)
        for row in rows:
            out[row[0]] = RunCost(*row[:5])  # without the rollup read's mark
    return list(out.values())


def has_runs(conn: Connection, where: Sequence[LedgerMatch]) -> bool:
    """Whether any run is recorded (with ``where``: any with ledger rows of the unit)."""
    if not where:
        return conn.execute(select(RunRow.id).limit(1)).first() is not None
    table = ROLLUP_TABLES["ledger_rollup_run"]
    query = select(table.c.run_id).where(table.c.run_id != "", *_matching(table, where))
    # The rows not yet folded first: a fold moves rows from there into the rollup, never
    # back, so one committed between the two reads is still seen by the second.
    tail = select(Ledger.id).where(
        *above_mark(read_mark(conn), where, conn.dialect.name), Ledger.run_id.is_not(None)
    )
    if conn.execute(tail.limit(1)).first() is not None:
        return True
    return conn.execute(query.limit(1)).first() is not None


def scope_matches(scope: Scope) -> list[LedgerMatch]:
    """The ledger totals' filter for ``scope`` (by the rows' own unit columns)."""
    if scope.kind in ("developer", "squad", "tribe", "division"):
        return [LedgerMatch((scope.kind,), scope.name)]
    return []


def _load_ledger(session: Session, data: Dataset) -> None:
    scope, period = data.scope, data.period
    conn = session.connection()
    where = scope_matches(scope)
    # Rollups: per developer and month in the period, and per run over all time.
    months = ledger_totals(
        conn, by=("developer", "month"), where=where, since=period.start, until=period.end
    )
    data.ledger_nano = sum(t.cost_nano for t in months.values())
    data.ledger_rows = sum(t.calls for t in months.values())
    data.developer_months = {
        (str(dev), str(month)): t.cost_nano for (dev, month), t in months.items() if dev
    }
    # The drill-down reaches the raw rows: the first ids by start time (the index's order).
    data.ledger_ids = list(
        session.scalars(
            select(Ledger.id)
            .where(
                ledger_filter(scope),
                Ledger.started_at >= period.start,
                Ledger.started_at < period.end,
            )
            .order_by(Ledger.started_at, Ledger.id)
            .limit(DRILL_DOWN_CAP)
        )
    )
    # The runs the figures read: those finished in the period and those linked to the
    # unit's changes, with their cost summed in the database.
    linked = {run for change in data.changes for run in data.linked("change", change.id, "run")}
    rows = read_runs(conn, where, period.start, period.end, linked)
    data.runs = {row.id: _run_facts(row, int(row.cost_nano or 0)) for row in rows}
    data.has_runs = bool(data.runs) or has_runs(conn, where)


def _in_scope_changes(session: Session, scope: Scope) -> list[InsightChangeRow]:
    rows = list(session.scalars(select(InsightChangeRow)))
    return rows if scope.is_organisation else [r for r in rows if scope.developer_of(r.author)]


def load_dataset(
    session: Session, scope: Scope, period: Period, production: frozenset[str] = PRODUCTION
) -> Dataset:
    """Read the unit's rows (changes, production deployments, incidents, links, runs and
    the ledger's aggregates) for ``period``."""
    data = Dataset(scope, period)
    links: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for link in session.scalars(select(InsightLinkRow)):
        links[(link.src_kind, link.src_id)].append((link.dst_kind, link.dst_id))
        links[(link.dst_kind, link.dst_id)].append((link.src_kind, link.src_id))
    data.links = dict(links)
    data.changes = _in_scope_changes(session, scope)
    deployments = session.scalars(
        select(InsightDeploymentRow).where(InsightDeploymentRow.environment.in_(production))
    )
    change_ids = {c.id for c in data.changes}
    data.deployments = [
        d
        for d in deployments
        if scope.is_organisation or set(data.linked("deployment", d.id, "change")) & change_ids
    ]
    deployment_ids = {d.id for d in data.deployments}
    incidents = session.scalars(select(InsightIncidentRow))
    data.incidents = [
        i
        for i in incidents
        if scope.is_organisation
        or set(data.linked("incident", i.id, "deployment")) & deployment_ids
        or set(data.linked("incident", i.id, "change")) & change_ids
    ]
    _load_ledger(session, data)
    return data
