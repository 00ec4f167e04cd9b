"""The measured signals maturity is scored from: KPI figures, and a few counts read from
runs, the organisation, budgets and surveys. Each signal carries its value (``None``:
unknown), how it was computed, and the rows it came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.analytics.dataset import Dataset
from orchestra.analytics.kpis import Figure
from orchestra.analytics.scope import Scope
from orchestra.analytics.surveys import list_survey_rounds, survey_results
from orchestra.org import OrgTree, stage_named
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayBudget, GatewayBudgetWindow

KPI_SIGNALS = (
    "test_coverage",
    "change_failure_rate",
    "lead_time_for_changes",
    "review_time",
    "deployment_frequency",
    "ai_adoption_developers",
)


@dataclass(frozen=True)
class Signal:
    """One measured signal."""

    name: str
    value: float | None
    how: str
    rows: tuple[str, ...] = ()
    rows_total: int = 0
    unknown: str | None = None


def _ratio(name: str, how: str, hits: list[str], rows: list[str], unknown: str) -> Signal:
    if not rows:
        return Signal(name, None, how, unknown=unknown)
    return Signal(name, len(hits) / len(rows), how, tuple(rows), len(rows))


def kpi_signal(figure: Figure) -> Signal:
    """A KPI figure as a signal (its definition's formula says how)."""
    d = figure.definition
    return Signal(
        figure.kpi, figure.value, d.formula, figure.rows, figure.rows_total, figure.unknown
    )


def run_signals(data: Dataset) -> list[Signal]:
    """Run pass rate, security findings per scanned run, and the red gate's share."""
    finished = [r for r in data.runs.values() if data.period.contains(r.finished_at)]
    scanned = [r for r in finished if r.findings is not None]
    findings = Signal(
        "security_findings_per_run",
        None if not scanned else sum(r.findings or 0 for r in scanned) / len(scanned),
        "bandit findings in runs finished in the period ÷ those runs that ran the scan",
        tuple(f"run:{r.id}" for r in scanned),
        len(scanned),
        None if scanned else "no run of the unit ran the security scan in the period",
    )
    red_runs = {r.id for r in finished if r.red_gate}
    merged = [c for c in data.changes if c.state == "merged" and data.period.contains(c.merged_at)]
    through = [c for c in merged if set(data.linked("change", c.id, "run")) & red_runs]
    return [
        _ratio(
            "run_pass_rate",
            "Orchestra runs that succeeded ÷ runs finished in the period",
            [f"run:{r.id}" for r in finished if r.status == "succeeded"],
            [f"run:{r.id}" for r in finished],
            "no run of the unit finished in the period",
        ),
        findings,
        _ratio(
            "red_gate_share",
            "changes merged in the period that came from a run whose report records the red "
            "gate ÷ changes merged in the period",
            [f"change:{c.id}" for c in through],
            [f"change:{c.id}" for c in merged],
            "no change of the unit was merged in the period",
        ),
    ]


def org_signals(tree: OrgTree, scope: Scope, units: set[str]) -> list[Signal]:
    """Headcount within the configured stage (organisation only) and the share of squads
    and tribes with a lead."""
    out: list[Signal] = []
    if scope.is_organisation:
        out.append(
            Signal(
                "stage_fit",
                float(stage_named(tree.stage).admits(tree.headcount)) if tree.stage else None,
                "1 when the organisation's headcount lies in its configured stage's range, else 0",
                tuple(f"developer:{d.name}" for d in tree.developers),
                tree.headcount,
                None if tree.stage else "no stage is configured (organisation.stage)",
            )
        )
    teams = [u for u in tree.units if u.kind in ("squad", "tribe") and u.name in units]
    led = [
        u.name for u in teams if any(d.unit == u.name and d.role == "lead" for d in tree.developers)
    ]
    out.append(
        _ratio(
            "units_with_lead",
            "squads and tribes with a developer whose role is lead ÷ squads and tribes",
            [f"unit:{n}" for n in led],
            [f"unit:{u.name}" for u in teams],
            "the unit has no squad or tribe",
        )
    )
    return out


def budget_signal(session: Session, scope: Scope, start: datetime, end: datetime) -> Signal:
    """Budget windows that began in the period and stayed below their soft alert line."""
    subjects = {scope.name, *scope.developers}
    rows = session.execute(
        select(GatewayBudgetWindow, GatewayBudget.subject).join(
            GatewayBudget, GatewayBudget.id == GatewayBudgetWindow.budget_id
        )
    ).all()
    windows: list[GatewayBudgetWindow] = []
    for window, subject in rows:
        try:
            began = datetime.fromisoformat(window.period_start.replace("Z", "+00:00"))
        except ValueError:
            continue  # "all": a budget without a period
        if start <= began < end and (scope.is_organisation or subject in subjects):
            windows.append(window)
    within = [w for w in windows if not w.alerted and w.spent_nano <= w.cap_nano]
    return _ratio(
        "budget_adherence",
        "budget windows of the unit that began in the period and stayed below their soft "
        "alert line (and cap) ÷ those windows",
        [f"budget_window:{w.id}" for w in within],
        [f"budget_window:{w.id}" for w in windows],
        "no budget window of the unit began in the period",
    )


def survey_signals(db: Database, scope: Scope) -> list[Signal]:
    """Satisfaction and NPS of the latest survey round whose results for the unit are shown
    (at least five answers)."""
    unit = None if scope.is_organisation else scope.name
    unknown = "no survey round has five or more answers from the unit"
    if scope.kind == "developer":
        unknown = "survey results are never shown for one developer"
    else:
        for found in list_survey_rounds(db):
            result = survey_results(db, found.id, unit=unit)
            if result.shown:
                rows = (f"survey:{found.id}",)
                return [
                    Signal(
                        "survey_satisfaction",
                        result.satisfaction,
                        f"mean satisfaction (1-5) of round {found.id}",
                        rows,
                        result.respondents,
                    ),
                    Signal(
                        "survey_nps",
                        result.nps,
                        f"promoters - detractors, % of respondents, round {found.id}",
                        rows,
                        result.respondents,
                    ),
                ]
    return [
        Signal("survey_satisfaction", None, "mean satisfaction (1-5)", unknown=unknown),
        Signal("survey_nps", None, "promoters - detractors, % of respondents", unknown=unknown),
    ]
