"""Rollout phases and their exit criteria, judged on measured values: go or no-go.

Every criterion reads one measured value — a KPI of ``orchestra insight`` for the phase's
unit, an experiment's decision from its report, or the developers' satisfaction from a
survey round's results for the phase's unit (groups of at least five respondents only:
fewer, and the value is unknown). A value given by hand (``--input``) overrides what is
measured and is marked "given, not measured". A value that is not known does not count as
met: it blocks the go.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra.analytics import SURVEY_MIN_GROUP
from orchestra.config import ExitCriterion, RolloutPhase, RolloutSection
from orchestra.errors import OrchestraError
from orchestra.experiments.errors import SuiteInvalid

Measured = float | str | None


@dataclass(frozen=True)
class CriterionCheck:
    """One exit criterion with its measured value."""

    metric: str
    wanted: str
    value: Measured
    source: str
    met: bool | None
    """``None``: the value is unknown (which blocks a go)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


@dataclass
class PhaseStatus:
    """A phase's cohort and criteria, and whether it may be left (go)."""

    name: str
    kind: str
    cohort: int
    size: int | None
    checks: list[CriterionCheck] = field(default_factory=list)

    @property
    def go(self) -> bool:
        """Every criterion met (no unknown, none failed) and at least one criterion."""
        return bool(self.checks) and all(c.met is True for c in self.checks)

    @property
    def blockers(self) -> list[str]:
        """Why not go: each criterion failed or unknown."""
        if not self.checks:
            return ["no exit criteria configured"]
        return [
            f"{c.metric}: {'unknown' if c.met is None else 'not met'} ({c.source})"
            for c in self.checks
            if c.met is not True
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "kind": self.kind,
            "cohort": self.cohort,
            "size": self.size,
            "go": self.go,
            "blockers": self.blockers,
            "criteria": [c.to_dict() for c in self.checks],
        }


def _wanted(c: ExitCriterion) -> str:
    parts = []
    if c.equals is not None:
        parts.append(f"= {c.equals}")
    if c.min is not None:
        parts.append(f">= {c.min:g}")
    if c.max is not None:
        parts.append(f"<= {c.max:g}")
    return (" and ".join(parts)) + (" x baseline" if c.relative_to_baseline else "")


def check_criterion(
    c: ExitCriterion, value: Measured, source: str, baselines: Mapping[str, float]
) -> CriterionCheck:
    """Judge ``value`` against ``c`` (unknown when ``value`` or a needed baseline is)."""
    wanted = _wanted(c)
    if value is None:
        return CriterionCheck(c.metric, wanted, None, source, None)
    if c.equals is not None:
        return CriterionCheck(c.metric, wanted, value, source, str(value) == c.equals)
    if isinstance(value, str):
        return CriterionCheck(c.metric, wanted, value, f"{source}; not a number", False)
    compared = value
    if c.relative_to_baseline:
        base = baselines.get(c.metric)
        if not base:
            return CriterionCheck(c.metric, wanted, value, f"{source}; no baseline", None)
        compared = value / base
    met = (c.min is None or compared >= c.min) and (c.max is None or compared <= c.max)
    return CriterionCheck(c.metric, wanted, value, source, met)


def experiment_decision(path: Path, name: str) -> tuple[Measured, str]:
    """The decision recorded in an experiment's report JSON (the first candidate's)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"report {path} not readable"
    decisions = data.get("decisions") or {}
    if not decisions:
        return None, f"report {path} has no decision"
    values = set(decisions.values())
    # With several candidates the rollout waits for all of them.
    value = "ship" if values == {"ship"} else sorted(values - {"ship"})[0]
    return value, f"experiment {name}: {path}"


MetricSource = Callable[[RolloutPhase, str], tuple[Measured, str]]
"""Gives a phase's measured value of a metric and where it came from."""


def rollout_status(
    section: RolloutSection, measure: MetricSource, *, base: Path | None = None
) -> list[PhaseStatus]:
    """Each configured phase with its criteria judged on what ``measure`` gives."""
    out = []
    for phase in section.phases:
        status = PhaseStatus(phase.name, phase.kind, len(phase.developers), phase.size)
        for criterion in phase.criteria:
            if criterion.metric.startswith("experiment:"):
                name = criterion.metric.split(":", 1)[1]
                where = section.experiments.get(name)
                if where is None:
                    raise SuiteInvalid(
                        f"phase {phase.name}: experiment {name!r} has no report configured",
                        hint=f"add rollout.experiments.{name}: <report.json>",
                    )
                path = Path(where) if base is None else base / where
                value, source = experiment_decision(path, name)
            else:
                value, source = measure(phase, criterion.metric)
            status.checks.append(check_criterion(criterion, value, source, section.baselines))
        out.append(status)
    return out


def render_rollout(statuses: list[PhaseStatus]) -> str:
    """The go/no-go report as Markdown."""
    lines = ["# Rollout status", ""]
    for s in statuses:
        planned = f" of {s.size} planned" if s.size else ""
        lines += [
            f"## {s.name} ({s.kind}): **{'GO' if s.go else 'NO-GO'}**",
            "",
            f"Cohort: {s.cohort} developers{planned}.",
            "",
            "| criterion | wanted | measured | met | source |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in s.checks:
            met = "unknown" if c.met is None else ("yes" if c.met else "no")
            value = "unknown" if c.value is None else c.value
            lines.append(f"| {c.metric} | {c.wanted} | {value} | {met} | {c.source} |")
        if not s.go:
            lines += ["", "Blocked by: " + "; ".join(s.blockers) + "."]
        lines.append("")
    return "\n".join(lines)


GIVEN = "given, not measured (--input)"
"""The source of a value given by hand."""
SURVEY_METRICS = ("satisfaction",)
"""Metrics read from survey results rather than from insight's KPIs."""


def survey_satisfaction(
    survey_of: Callable[[str | None], Any], unit: str | None
) -> tuple[Measured, str]:
    """The share of ``unit``'s survey respondents who are satisfied, and where it came from.

    ``survey_of(unit)`` returns an :class:`orchestra.analytics.SurveyResult` or raises an
    :class:`~orchestra.errors.OrchestraError` (no round, no organisation). A group of
    fewer than :data:`~orchestra.analytics.SURVEY_MIN_GROUP` respondents, or one hidden
    so that a subtraction cannot single out a smaller group, is unknown."""
    try:
        result = survey_of(unit)
    except OrchestraError as exc:
        return None, f"survey unavailable: {exc.message}"
    where = f"survey {result.round_id} ({result.kind} {result.unit})"
    if result.respondents < SURVEY_MIN_GROUP:
        return None, f"{where}: fewer than {SURVEY_MIN_GROUP} answers"
    if not result.shown or result.satisfied is None:
        return None, f"{where}: {result.hidden or 'no figures'}"
    return float(result.satisfied), f"{where}: {result.respondents} answers, share satisfied"


def kpi_metric_source(
    figures_of: Callable[[str | None], Mapping[str, Any]],
    given: Mapping[str, float],
    survey_of: Callable[[str | None], Any] | None = None,
) -> MetricSource:
    """A :data:`MetricSource` over values given by hand (``given``, first: an override
    marked "given, not measured"), survey results for :data:`SURVEY_METRICS`
    (``survey_of``, see :func:`survey_satisfaction`) and insight's KPIs:
    ``figures_of(unit)`` returns a unit's figures by KPI name (objects with ``value`` and
    ``unknown``), or raises an :class:`~orchestra.errors.OrchestraError` saying why there
    are none (then each KPI criterion is unknown, with that reason)."""
    cache: dict[str | None, Mapping[str, Any] | str] = {}

    def measure(phase: RolloutPhase, metric: str) -> tuple[Measured, str]:
        if metric in given:
            return given[metric], GIVEN
        if metric in SURVEY_METRICS and survey_of is not None:
            return survey_satisfaction(survey_of, phase.unit)
        if phase.unit not in cache:
            try:
                cache[phase.unit] = figures_of(phase.unit)
            except OrchestraError as exc:
                cache[phase.unit] = exc.message
        figures = cache[phase.unit]
        if isinstance(figures, str):
            return None, f"insight unavailable: {figures}"
        figure = figures.get(metric)
        if figure is None:
            return None, f"no KPI or given value named {metric}"
        where = f"insight KPI {metric} ({phase.unit or 'organisation'})"
        if figure.value is None:
            return None, f"{where}: {figure.unknown or 'unknown'}"
        return float(figure.value), where

    return measure
