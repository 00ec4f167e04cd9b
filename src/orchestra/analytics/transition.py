"""Transition plans: from a unit's current stage to a target stage, its readiness, the
critical gaps, phases with activities and a timeline (``rules/roadmaps-<version>.json``),
exit criteria evaluated against what was measured, and progress over time (each recorded
evaluation is a snapshot)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from orchestra.analytics.datafiles import load_data
from orchestra.analytics.errors import AnalyticsError
from orchestra.analytics.maturity import (
    DEFAULT_RULES,
    MaturityAssessment,
    Readiness,
    assess_maturity,
    evaluate_readiness,
    load_maturity_rules,
    readiness_dict,
)
from orchestra.analytics.report import InsightSettings
from orchestra.analytics.scope import Period, Principal
from orchestra.org import STAGES
from orchestra.store import Database
from orchestra.store.tables.insight2 import InsightPlanSnapshotRow

DEFAULT_ROADMAPS = "1"


def load_roadmaps(version: str = DEFAULT_ROADMAPS) -> dict[str, Any]:
    """The roadmap templates of ``version``."""
    return load_data("rules", "roadmaps", version, "roadmaps")


@dataclass(frozen=True)
class ExitCriterion:
    """A phase's exit criterion beside its measured value."""

    measure: str
    """``kpi:<name>``, ``signal:<name>`` or ``dimension:<name>``."""
    bound: str
    """``min`` (at least) or ``max`` (at most)."""
    target: float
    actual: float | None
    met: bool | None


@dataclass(frozen=True)
class PlanPhase:
    """One phase of the plan, placed on the timeline."""

    stage: str
    name: str
    starts: datetime
    ends: datetime
    activities: tuple[str, ...]
    exit: tuple[ExitCriterion, ...]

    @property
    def status(self) -> str:
        """``done`` (every exit criterion met), ``open``, or ``unknown`` (none missed but
        some not measured)."""
        if all(c.met for c in self.exit):
            return "done"
        return "open" if any(c.met is False for c in self.exit) else "unknown"


@dataclass(frozen=True)
class PlanSnapshot:
    """A recorded evaluation of the plan."""

    at: datetime
    readiness: float | None
    criteria_met: int
    criteria_known: int
    criteria_total: int


@dataclass(frozen=True)
class TransitionPlan:
    """A plan from ``current`` to ``target``."""

    unit: str
    current: str
    target: str
    readiness: Readiness
    gaps: list[dict[str, Any]]
    phases: list[PlanPhase]
    progress: list[PlanSnapshot]
    assessment: MaturityAssessment

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "unit": self.unit,
            "current": self.current,
            "target": self.target,
            "readiness": readiness_dict(self.readiness),
            "gaps": self.gaps,
            "phases": [
                {
                    "stage": p.stage,
                    "phase": p.name,
                    "starts": p.starts.date().isoformat(),
                    "ends": p.ends.date().isoformat(),
                    "status": p.status,
                    "activities": list(p.activities),
                    "exit": [c.__dict__ for c in p.exit],
                }
                for p in self.phases
            ],
            "progress": [{**s.__dict__, "at": s.at.isoformat()} for s in self.progress],
        }


def _measures(assessment: MaturityAssessment) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, dim in assessment.dimensions.items():
        out[f"dimension:{name}"] = dim.score
        for e in dim.evidence:
            out[f"signal:{e.signal.name}"] = e.signal.value
    for name, figure in assessment.figures.items():
        out[f"kpi:{name}"] = figure.value
    return out


def _criterion(item: dict[str, Any], measures: dict[str, float | None]) -> ExitCriterion:
    kind = next(k for k in ("kpi", "signal", "dimension") if k in item)
    measure = f"{kind}:{item[kind]}"
    bound = "min" if "min" in item else "max"
    target = float(item[bound])
    actual = measures.get(measure)
    met = None if actual is None else (actual >= target if bound == "min" else actual <= target)
    return ExitCriterion(measure, bound, target, actual, met)


def _phases(
    current: str, target: str, start: datetime, roadmaps: dict[str, Any], measures: dict[str, Any]
) -> list[PlanPhase]:
    names = [s.name for s in STAGES]
    phases: list[PlanPhase] = []
    at = start
    for stage in names[names.index(current) + 1 : names.index(target) + 1]:
        for item in roadmaps["stages"].get(stage, []):
            ends = at + timedelta(weeks=float(item["weeks"]))
            exit_ = tuple(_criterion(c, measures) for c in item["exit"])
            phases.append(
                PlanPhase(stage, item["phase"], at, ends, tuple(item["activities"]), exit_)
            )
            at = ends
    return phases


def _gaps(readiness: Readiness) -> list[dict[str, Any]]:
    """Criteria missed first (the critical gaps), then those without data."""
    missed = [c for c in readiness.criteria if c.met is False]
    unknown = [c for c in readiness.criteria if c.met is None]
    return [
        {**c.__dict__, "gap": "missed" if c.met is False else "no data"} for c in missed + unknown
    ]


def plan_transition(
    db: Database,
    principal: Principal,
    *,
    target: str,
    unit: str | None = None,
    period: Period,
    start: datetime | None = None,
    record: bool = False,
    settings: InsightSettings | None = None,
    now: datetime | None = None,
) -> TransitionPlan:
    """The plan from ``unit``'s current stage to ``target`` for measures of ``period``;
    ``record`` stores this evaluation as a snapshot of the plan's progress."""
    settings = settings or InsightSettings()
    now = now or datetime.now(UTC)
    names = [s.name for s in STAGES]
    assessment = assess_maturity(db, principal, unit=unit, period=period, settings=settings)
    current = assessment.stage
    if target not in names or names.index(target) <= names.index(current):
        later = names[names.index(current) + 1 :]
        hint = f"{current} is the last stage" if not later else "one of: " + ", ".join(later)
        raise AnalyticsError(f"cannot plan from {current} to {target!r}", hint=hint)
    rules = load_maturity_rules(DEFAULT_RULES)
    readiness = evaluate_readiness(
        target, rules, assessment.dimensions, assessment.figures, settings.stage_targets
    )
    phases = _phases(current, target, start or now, load_roadmaps(), _measures(assessment))
    plan = TransitionPlan(
        assessment.unit, current, target, readiness, _gaps(readiness), phases, [], assessment
    )
    with db.session() as session:
        if record:
            known = sum(1 for c in readiness.criteria if c.met is not None)
            session.add(
                InsightPlanSnapshotRow(
                    unit=plan.unit,
                    current_stage=current,
                    target_stage=target,
                    at=now,
                    readiness=readiness.score,
                    criteria_met=sum(1 for c in readiness.criteria if c.met),
                    criteria_known=known,
                    criteria_total=len(readiness.criteria),
                    detail=json.dumps(plan.to_dict(), default=str),
                )
            )
            session.flush()
        rows = session.scalars(
            select(InsightPlanSnapshotRow)
            .where(
                InsightPlanSnapshotRow.unit == plan.unit,
                InsightPlanSnapshotRow.target_stage == target,
            )
            .order_by(InsightPlanSnapshotRow.at, InsightPlanSnapshotRow.id)
        )
        progress = [
            PlanSnapshot(r.at, r.readiness, r.criteria_met, r.criteria_known, r.criteria_total)
            for r in rows
        ]
    return TransitionPlan(
        plan.unit, current, target, readiness, plan.gaps, phases, progress, assessment
    )
