"""Maturity in four dimensions (technical, process, organisational, cultural), scored from
measured signals by versioned rules (``rules/maturity-<version>.json``), each score with
its evidence; a dimension without data is N/A. The assessment ends with readiness for the
next growth stage: the rules' least dimension scores and the stage's KPI targets, each
met, missed or unknown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestra.analytics.datafiles import data_versions, load_data
from orchestra.analytics.dataset import load_dataset
from orchestra.analytics.governance_signals import (
    policy_signal,
    registry_pools_signal,
    registry_use_signal,
)
from orchestra.analytics.kpis import Figure
from orchestra.analytics.report import InsightSettings, KPIReport, kpi_report
from orchestra.analytics.scope import Period, Principal
from orchestra.analytics.signals import (
    KPI_SIGNALS,
    Signal,
    budget_signal,
    kpi_signal,
    org_signals,
    run_signals,
    survey_signals,
)
from orchestra.analytics.stage_targets import compare_targets, targets_for
from orchestra.org import STAGES, OrgTree, load_org
from orchestra.store import Database

DEFAULT_RULES = "2"
DIMENSIONS = ("technical", "process", "organisational", "cultural")


def maturity_rule_versions() -> list[str]:
    """The maturity rule versions shipped."""
    return data_versions("rules", "maturity")


def load_maturity_rules(version: str = DEFAULT_RULES) -> dict[str, Any]:
    """The maturity rules of ``version``."""
    return load_data("rules", "maturity", version, "maturity rules")


@dataclass(frozen=True)
class Evidence:
    """One signal's measured value and the score the rules gave it."""

    signal: Signal
    score: int | None
    rule: str
    """The level that matched, e.g. ``>= 80 -> 4``; empty when unknown."""
    weight: float


@dataclass(frozen=True)
class DimensionScore:
    """A dimension's score (``None``: N/A, no signal was known) and its evidence."""

    dimension: str
    score: float | None
    evidence: list[Evidence]


@dataclass(frozen=True)
class ReadinessCriterion:
    """One condition for entering a stage, beside what was measured."""

    name: str
    kind: str
    """``maturity`` (a dimension's least score) or ``kpi`` (a stage target)."""
    target: float
    actual: float | None
    met: bool | None


@dataclass(frozen=True)
class Readiness:
    """How ready a unit is for ``stage``: the share of its criteria met (unknown ones count
    as not met and are listed), ``ready`` when all are met."""

    stage: str
    score: float
    ready: bool
    criteria: list[ReadinessCriterion]

    @property
    def unknown(self) -> list[str]:
        """Criteria that could not be evaluated (no data)."""
        return [c.name for c in self.criteria if c.met is None]


@dataclass(frozen=True)
class MaturityAssessment:
    """A unit's maturity for a period."""

    unit: str
    kind: str
    period: Period
    stage: str
    rules: str
    dimensions: dict[str, DimensionScore]
    readiness: Readiness | None
    """For the next stage; ``None`` at the last one."""
    figures: dict[str, Figure] = field(default_factory=dict, repr=False)
    """KPI name -> its figure, for readiness and transition plans."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with every score's evidence."""
        return {
            "unit": {"kind": self.kind, "name": self.unit},
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "stage": self.stage,
            "rules": self.rules,
            "dimensions": {
                name: {
                    "score": "N/A" if d.score is None else d.score,
                    "evidence": [
                        {
                            "signal": e.signal.name,
                            "value": e.signal.value,
                            "score": e.score,
                            "rule": e.rule,
                            "weight": e.weight,
                            "how": e.signal.how,
                            "unknown": e.signal.unknown,
                            "rows": list(e.signal.rows),
                            "rows_total": e.signal.rows_total,
                        }
                        for e in d.evidence
                    ],
                }
                for name, d in self.dimensions.items()
            },
            "readiness": None if self.readiness is None else readiness_dict(self.readiness),
        }


def readiness_dict(r: Readiness) -> dict[str, Any]:
    """A readiness, JSON-ready."""
    return {
        "stage": r.stage,
        "score": r.score,
        "ready": r.ready,
        "unknown": r.unknown,
        "criteria": [c.__dict__ for c in r.criteria],
    }


def _level(levels: list[dict[str, Any]], value: float) -> tuple[int | None, str]:
    for level in levels:
        if "min" in level and value >= level["min"]:
            return int(level["score"]), f">= {level['min']:g} -> {level['score']}"
        if "max" in level and (level["max"] is None or value <= level["max"]):
            bound = "any" if level["max"] is None else f"<= {level['max']:g}"
            return int(level["score"]), f"{bound} -> {level['score']}"
    return None, ""


def score_dimension(
    dimension: str, rules: Mapping[str, Any], signals: Mapping[str, Signal]
) -> DimensionScore:
    """Score ``dimension`` from ``signals`` by ``rules`` (a rules file's content)."""
    evidence: list[Evidence] = []
    for name, rule in rules["dimensions"][dimension].items():
        signal = signals.get(name) or Signal(name, None, "", unknown="not measured")
        score, matched = (
            (None, "") if signal.value is None else _level(rule["levels"], signal.value)
        )
        evidence.append(Evidence(signal, score, matched, float(rule.get("weight", 1))))
    known = [e for e in evidence if e.score is not None]
    weight = sum(e.weight for e in known)
    total = sum(e.weight * (e.score or 0) for e in known)
    return DimensionScore(dimension, round(total / weight, 2) if weight else None, evidence)


def evaluate_readiness(
    stage: str,
    rules: Mapping[str, Any],
    dimensions: Mapping[str, DimensionScore],
    figures: Mapping[str, Figure],
    overrides: Mapping[str, Mapping[str, float]] | None = None,
) -> Readiness:
    """``stage``'s criteria (least dimension scores, KPI targets) against the measures."""
    criteria: list[ReadinessCriterion] = []
    least = float(rules["readiness"].get(stage, 0))
    for name in DIMENSIONS:
        actual = dimensions[name].score if name in dimensions else None
        ok = None if actual is None else actual >= least
        criteria.append(
            ReadinessCriterion(f"{name} maturity >= {least:g}", "maturity", least, actual, ok)
        )
    for check in compare_targets(targets_for(stage, overrides), figures):
        criteria.append(ReadinessCriterion(check.kpi, "kpi", check.target, check.actual, check.met))
    count = sum(1 for c in criteria if c.met)
    return Readiness(stage, count / len(criteria), count == len(criteria), criteria)


def next_stage(stage: str) -> str | None:
    """The stage after ``stage``; ``None`` after the last."""
    names = [s.name for s in STAGES]
    i = names.index(stage) if stage in names else -1
    return names[i + 1] if 0 <= i < len(names) - 1 else None


def measure(
    db: Database, tree: OrgTree, report: KPIReport, settings: InsightSettings
) -> dict[str, Signal]:
    """Every signal the rules may read, for ``report``'s unit and period."""
    scope = report.scope
    signals = {k: kpi_signal(report.figures[k]) for k in KPI_SIGNALS if k in report.figures}
    below = {u.name for u in tree.units} if scope.is_organisation else _below(tree, scope.name)
    with db.session() as session:
        data = load_dataset(session, scope, report.period, settings.production)
        extra = [
            *run_signals(data),
            budget_signal(session, scope, report.period.start, report.period.end),
            policy_signal(session, scope, data),
            registry_use_signal(session, data),
            registry_pools_signal(session, tree, below),
        ]
    extra += org_signals(tree, scope, below)
    extra += survey_signals(db, scope)
    signals.update({s.name: s for s in extra})
    return signals


def _below(tree: OrgTree, unit: str) -> set[str]:
    found, todo = {unit}, [unit]
    while todo:
        for child in tree.children(todo.pop()):
            found.add(child.name)
            todo.append(child.name)
    return found


def assess_maturity(
    db: Database,
    principal: Principal,
    *,
    unit: str | None = None,
    period: Period,
    settings: InsightSettings | None = None,
    rules_version: str = DEFAULT_RULES,
) -> MaturityAssessment:
    """``unit``'s maturity for ``period`` (visible as its KPIs are), ending with readiness
    for the next stage."""
    settings = settings or InsightSettings()
    rules = load_maturity_rules(rules_version)
    report = kpi_report(db, principal, unit=unit, period=period, settings=settings)
    tree = load_org(db)
    assert tree is not None  # kpi_report refused otherwise
    signals = measure(db, tree, report, settings)
    dimensions = {d: score_dimension(d, rules, signals) for d in DIMENSIONS}
    upcoming = next_stage(report.stage)
    readiness = (
        None
        if upcoming is None
        else evaluate_readiness(upcoming, rules, dimensions, report.figures, settings.stage_targets)
    )
    return MaturityAssessment(
        report.scope.name,
        report.scope.kind,
        period,
        report.stage,
        rules["version"],
        dimensions,
        readiness,
        dict(report.figures),
    )
