"""The formulas: each KPI computed from a unit's :class:`Dataset`, with the rows it used.

A figure whose inputs are missing is unknown (``value is None`` and ``unknown`` says
why), never 0. The change failure rate divides failed *deployments* by deployments and
counts a deployment once however many incidents point at it; ``tests/analytics`` holds
the golden fixtures, the public tools' three mistakes among them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestra.analytics.dataset import Dataset, aware
from orchestra.analytics.definitions import DEFINITIONS, KPIDefinition, definition
from orchestra.analytics.records import FAILED_STATUSES, FINISHED_STATUSES
from orchestra.store.tables.insight import InsightChangeRow, InsightDeploymentRow

NANO = 1_000_000_000


@dataclass(frozen=True)
class Figure:
    """One KPI's value for one unit and period, and the rows it came from."""

    kpi: str
    value: float | None
    """``None``: unknown (see :attr:`unknown`)."""
    unit: str
    unknown: str | None
    rows: tuple[str, ...]
    """Drill-down: ``<kind>:<id>`` of every row the figure used (ledger ids capped)."""
    rows_total: int
    detail: dict[str, Any] = field(default_factory=dict)
    """Numerator, denominator, the median's sample size, band ..."""

    @property
    def definition(self) -> KPIDefinition:
        """How the figure is computed."""
        return definition(self.kpi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the definition."""
        d = self.definition
        return {
            "kpi": self.kpi,
            "value": self.value,
            "unit": self.unit,
            "unknown": self.unknown,
            "rows": list(self.rows),
            "rows_total": self.rows_total,
            "detail": self.detail,
            "definition": {
                "title": d.title,
                "formula": d.formula,
                "inputs": list(d.inputs),
                "unit": d.unit,
                "unknown_when": d.unknown_when,
            },
        }


def _figure(kpi: str, value: float | None, rows: Iterable[str], **detail: Any) -> Figure:
    d = definition(kpi)
    refs = tuple(rows)
    unknown = d.unknown_when if value is None else None
    total = int(detail.pop("rows_total", len(refs)))
    return Figure(kpi, value, d.unit, unknown, refs, total, detail)


def _hours(start: datetime | None, end: datetime | None) -> float | None:
    start, end = aware(start), aware(end)
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 3600


def _median(kpi: str, pairs: list[tuple[str, float]]) -> Figure:
    if not pairs:
        return _figure(kpi, None, ())
    return _figure(
        kpi, statistics.median(v for _, v in pairs), (r for r, _ in pairs), sample=len(pairs)
    )


def _finished_in(data: Dataset) -> list[InsightDeploymentRow]:
    return [
        d
        for d in data.deployments
        if d.status in FINISHED_STATUSES - {"canceled", "inactive"}
        and data.period.contains(d.finished_at)
    ]


def deployment_frequency(data: Dataset) -> Figure:
    """Successful production deployments per week."""
    if not data.deployments:
        return _figure("deployment_frequency", None, ())
    ok = [d for d in _finished_in(data) if d.status == "success"]
    rate = len(ok) / data.period.weeks if data.period.weeks > 0 else None
    return _figure(
        "deployment_frequency",
        rate,
        (f"deployment:{d.id}" for d in ok),
        deployments=len(ok),
        weeks=round(data.period.weeks, 3),
    )


def _failed(data: Dataset, dep: InsightDeploymentRow) -> bool:
    return dep.status in FAILED_STATUSES or bool(data.linked("deployment", dep.id, "incident"))


def change_failure_rate(data: Dataset) -> Figure:
    """Failed deployments ÷ deployments (each deployment counted once)."""
    finished = _finished_in(data)
    if not finished:
        return _figure("change_failure_rate", None, ())
    failed = [d for d in finished if _failed(data, d)]
    return _figure(
        "change_failure_rate",
        len(failed) / len(finished),
        (f"deployment:{d.id}" for d in finished),
        failed=len(failed),
        deployments=len(finished),
        failed_rows=[f"deployment:{d.id}" for d in failed],
    )


def lead_time_pairs(data: Dataset) -> list[tuple[str, float]]:
    """Per change first deployed successfully in the period: (``change:<id>``, hours from
    its opening to that deployment), the samples of the lead time (and of ROI's)."""
    deployments = {d.id: d for d in data.deployments if d.status == "success"}
    pairs: list[tuple[str, float]] = []
    for change in data.changes:
        done = [
            deployments[i]
            for i in data.linked("change", change.id, "deployment")
            if i in deployments and deployments[i].finished_at is not None
        ]
        first = min(done, key=lambda d: d.finished_at or d.created_at) if done else None
        if first is not None and data.period.contains(first.finished_at):
            hours = _hours(change.created_at, first.finished_at)
            if hours is not None:
                pairs.append((f"change:{change.id}", hours))
    return pairs


def lead_time_for_changes(data: Dataset) -> Figure:
    """Median hours from a change's opening to its first successful production deploy."""
    return _median("lead_time_for_changes", lead_time_pairs(data))


def time_to_restore(data: Dataset) -> Figure:
    """Median hours from an incident's opening to its resolution."""
    pairs = [
        (f"incident:{i.id}", h)
        for i in data.incidents
        if i.kind == "incident"
        and data.period.contains(i.resolved_at)
        and (h := _hours(i.created_at, i.resolved_at)) is not None
    ]
    return _median("time_to_restore", pairs)


def _merged(data: Dataset) -> list[InsightChangeRow]:
    return [c for c in data.changes if c.state == "merged" and data.period.contains(c.merged_at)]


def velocity(data: Dataset) -> Figure:
    """Changes merged per week."""
    if not data.changes or data.period.weeks <= 0:
        return _figure("velocity", None, ())
    merged = _merged(data)
    return _figure(
        "velocity",
        len(merged) / data.period.weeks,
        (f"change:{c.id}" for c in merged),
        merged=len(merged),
    )


def tasks_per_week(data: Dataset) -> Figure:
    """Runs that succeeded per week."""
    if not data.has_runs or data.period.weeks <= 0:
        return _figure("tasks_per_week", None, ())
    done = [
        r
        for r in data.runs.values()
        if r.status == "succeeded" and data.period.contains(r.finished_at)
    ]
    return _figure(
        "tasks_per_week",
        len(done) / data.period.weeks,
        (f"run:{r.id}" for r in done),
        tasks=len(done),
    )


def cycle_time_pairs(data: Dataset) -> list[tuple[str, float]]:
    """Per change merged in the period: (``change:<id>``, hours from opening to merge)."""
    return [
        (f"change:{c.id}", h)
        for c in _merged(data)
        if (h := _hours(c.created_at, c.merged_at)) is not None
    ]


def cycle_time(data: Dataset) -> Figure:
    """Median hours from opening to merge."""
    return _median("cycle_time", cycle_time_pairs(data))


def review_time(data: Dataset) -> Figure:
    """Median hours from opening to the first review."""
    pairs = [
        (f"change:{c.id}", h)
        for c in data.changes
        if data.period.contains(c.first_review_at)
        and (h := _hours(c.created_at, c.first_review_at)) is not None
    ]
    return _median("review_time", pairs)


def _runs_in(data: Dataset) -> list[Any]:
    return [r for r in data.runs.values() if data.period.contains(r.finished_at)]


def test_coverage(data: Dataset) -> Figure:
    """Mean changed-line coverage over the period's runs that measured it."""
    runs = [r for r in _runs_in(data) if r.coverage is not None]
    if not runs:
        return _figure("test_coverage", None, ())
    return _figure(
        "test_coverage", statistics.fmean(r.coverage for r in runs), (f"run:{r.id}" for r in runs)
    )


def _changes_bugs(data: Dataset, merged: list[InsightChangeRow]) -> set[str]:
    ids = {c.id for c in merged}
    bugs: set[str] = set()
    for incident in data.incidents:
        if incident.kind not in ("bug", "incident"):
            continue
        via = set(data.linked("incident", incident.id, "change"))
        for dep in data.linked("incident", incident.id, "deployment"):
            via |= set(data.linked("deployment", dep, "change"))
        if via & ids:
            bugs.add(incident.id)
    return bugs


def bug_density(data: Dataset) -> Figure:
    """Linked bugs and incidents per thousand changed lines."""
    sized = [c for c in _merged(data) if c.additions is not None and c.deletions is not None]
    lines = sum((c.additions or 0) + (c.deletions or 0) for c in sized)
    if not lines:
        return _figure("bug_density", None, ())
    bugs = _changes_bugs(data, sized)
    rows = [f"change:{c.id}" for c in sized] + [f"incident:{i}" for i in sorted(bugs)]
    return _figure("bug_density", len(bugs) / (lines / 1000), rows, bugs=len(bugs), lines=lines)


def security_findings(data: Dataset) -> Figure:
    """Bandit findings of the period's runs plus security issues opened in it."""
    scanned = [r for r in _runs_in(data) if r.findings is not None]
    issues = [
        i for i in data.incidents if i.kind == "security" and data.period.contains(i.created_at)
    ]
    if not scanned and not issues:
        return _figure("security_findings", None, ())
    weeks: Counter[str] = Counter()
    for run in scanned:
        weeks[f"{run.finished_at:%G-W%V}"] += run.findings or 0
    for issue in issues:
        weeks[f"{aware(issue.created_at):%G-W%V}"] += 1
    total = sum(r.findings or 0 for r in scanned) + len(issues)
    rows = [f"run:{r.id}" for r in scanned] + [f"incident:{i.id}" for i in issues]
    return _figure("security_findings", float(total), rows, by_week=dict(sorted(weeks.items())))


def _usd(nano: int) -> float:
    return nano / NANO


def cost_per_run(data: Dataset) -> Figure:
    """Ledger cost per run finished in the period."""
    runs = [r for r in _runs_in(data) if r.cost_nano]
    if not runs:
        return _figure("cost_per_run", None, ())
    cost = sum(r.cost_nano for r in runs)
    return _figure(
        "cost_per_run",
        _usd(cost) / len(runs),
        (f"run:{r.id}" for r in runs),
        cost_usd=_usd(cost),
        runs=len(runs),
    )


def _cost_per_change(kpi: str, data: Dataset, changes: list[InsightChangeRow]) -> Figure:
    rows: list[str] = []
    cost = count = 0
    for change in changes:
        runs = [r for r in data.linked("change", change.id, "run") if r in data.runs]
        if runs:
            count += 1
            cost += sum(data.runs[r].cost_nano for r in runs)
            rows += [f"change:{change.id}", *(f"run:{r}" for r in runs)]
    if not count:
        return _figure(kpi, None, ())
    return _figure(kpi, _usd(cost) / count, rows, cost_usd=_usd(cost), changes=count)


def cost_per_pr(data: Dataset) -> Figure:
    """Run cost per change opened in the period that came from a run."""
    opened = [c for c in data.changes if data.period.contains(c.created_at)]
    return _cost_per_change("cost_per_pr", data, opened)


def cost_per_feature(data: Dataset) -> Figure:
    """Run cost per change merged in the period that came from a run."""
    return _cost_per_change("cost_per_feature", data, _merged(data))


def cost_per_developer_month(data: Dataset) -> Figure:
    """Ledger cost ÷ developer-months with calls."""
    if not data.ledger_rows or not data.developer_months:
        return _figure("cost_per_developer_month", None, ())
    value = _usd(data.ledger_nano) / len(data.developer_months)
    return _figure(
        "cost_per_developer_month",
        value,
        (f"ledger:{i}" for i in data.ledger_ids),
        rows_total=data.ledger_rows,
        cost_usd=_usd(data.ledger_nano),
        developer_months=len(data.developer_months),
    )


def ai_adoption_developers(data: Dataset) -> Figure:
    """Share of the unit's developers who made a call in the period."""
    if not data.scope.developers:
        return _figure("ai_adoption_developers", None, ())
    users = sorted({dev for dev, _ in data.developer_months} & data.scope.developers)
    return _figure(
        "ai_adoption_developers",
        len(users) / len(data.scope.developers),
        (f"developer:{d}" for d in users),
        developers=len(data.scope.developers),
    )


def ai_adoption_changes(data: Dataset) -> Figure:
    """Share of merged changes that came from a run."""
    merged = _merged(data)
    if not merged:
        return _figure("ai_adoption_changes", None, ())
    through = [c for c in merged if data.linked("change", c.id, "run")]
    return _figure(
        "ai_adoption_changes",
        len(through) / len(merged),
        (f"change:{c.id}" for c in merged),
        through_orchestra=len(through),
        through_rows=[f"change:{c.id}" for c in through],
    )


FORMULAS: dict[str, Callable[[Dataset], Figure]] = {
    "deployment_frequency": deployment_frequency,
    "lead_time_for_changes": lead_time_for_changes,
    "change_failure_rate": change_failure_rate,
    "time_to_restore": time_to_restore,
    "velocity": velocity,
    "tasks_per_week": tasks_per_week,
    "cycle_time": cycle_time,
    "review_time": review_time,
    "test_coverage": test_coverage,
    "bug_density": bug_density,
    "security_findings": security_findings,
    "cost_per_run": cost_per_run,
    "cost_per_pr": cost_per_pr,
    "cost_per_feature": cost_per_feature,
    "cost_per_developer_month": cost_per_developer_month,
    "ai_adoption_developers": ai_adoption_developers,
    "ai_adoption_changes": ai_adoption_changes,
}
"""KPI name -> formula; one per definition."""

assert set(FORMULAS) == {d.name for d in DEFINITIONS}
