"""Per-stage KPI targets, compared with the measured figures.

The defaults are Orchestra's: the design documents available to this project state no
numeric success metric per stage, so each default is tied to a DORA 2023 band (the
``high`` band for the first stages, ``elite`` for large organisations, where the platform
work to reach it is staffed) or to a plain share. Every target is overridable per stage in
``insight.stage_targets``. A target met or missed is said only of a known figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestra.analytics.definitions import definition
from orchestra.analytics.kpis import Figure

_HIGH = {
    "deployment_frequency": 1.0,  # DORA 2023 high: at least weekly
    "lead_time_for_changes": 168.0,  # high: under a week
    "change_failure_rate": 0.10,  # high: 10 %
    "time_to_restore": 24.0,  # high: under a day
    "test_coverage": 80.0,
    "review_time": 24.0,
}
_ELITE = {
    **_HIGH,
    "deployment_frequency": 7.0,  # elite: on demand, daily or more
    "lead_time_for_changes": 24.0,
    "change_failure_rate": 0.05,
    "time_to_restore": 1.0,
}

DEFAULT_TARGETS: dict[str, dict[str, float]] = {
    "individual": {**_HIGH, "ai_adoption_developers": 1.0},
    "small_team": {**_HIGH, "ai_adoption_developers": 0.8, "ai_adoption_changes": 0.5},
    "medium": {**_HIGH, "ai_adoption_developers": 0.7, "ai_adoption_changes": 0.5},
    "large": {**_ELITE, "ai_adoption_developers": 0.6, "ai_adoption_changes": 0.5},
    "enterprise": {**_ELITE, "ai_adoption_developers": 0.5, "ai_adoption_changes": 0.4},
}
"""Stage -> KPI -> target (see the module's docstring for where they come from)."""


@dataclass(frozen=True)
class TargetCheck:
    """One KPI's target for a stage beside its measured figure."""

    kpi: str
    target: float
    actual: float | None
    met: bool | None
    """``None`` when the figure is unknown."""


def targets_for(
    stage: str, overrides: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, float]:
    """The targets of ``stage``: the defaults, then ``overrides[stage]``."""
    targets = dict(DEFAULT_TARGETS.get(stage, {}))
    for kpi, value in (overrides or {}).get(stage, {}).items():
        definition(kpi)  # an unknown KPI name is an error, not a silent target
        targets[kpi] = float(value)
    return targets


def compare_targets(
    targets: Mapping[str, float], figures: Mapping[str, Figure]
) -> list[TargetCheck]:
    """Each target beside its figure: met when at or below (lower is better) or at or above."""
    checks: list[TargetCheck] = []
    for kpi, target in targets.items():
        figure = figures.get(kpi)
        actual = figure.value if figure is not None else None
        met = None
        if actual is not None:
            met = actual <= target if definition(kpi).lower_is_better else actual >= target
        checks.append(TargetCheck(kpi, target, actual, met))
    return checks
