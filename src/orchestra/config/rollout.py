"""Configuration section ``rollout``: the phases, their cohorts and exit criteria."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestra.config.models import StrictModel

PhaseKind = Literal["pilot", "department", "hybrid", "full"]


class ExitCriterion(StrictModel):
    """One measured value a phase needs before the next starts.

    ``metric`` is a KPI of ``orchestra insight`` (``cost_per_developer_month``,
    ``security_findings``, ``tasks_per_week`` ...), ``experiment:<name>`` (the decision in
    that experiment's report), or ``satisfaction`` (the share of the phase unit's survey
    respondents who are satisfied, read from ``orchestra survey`` results).
    """

    metric: str = Field(min_length=1, max_length=100)
    min: float | None = None
    max: float | None = None
    equals: str | None = None
    """For experiment decisions: ``ship``."""
    relative_to_baseline: bool = False
    """Compare ``value / baselines[metric]`` (productivity against the baseline)."""

    @model_validator(mode="after")
    def _one_bound(self) -> ExitCriterion:
        if self.min is None and self.max is None and self.equals is None:
            raise ValueError("give min, max or equals")
        return self


class RolloutPhase(StrictModel):
    """One phase: who is in it and what must hold to leave it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: PhaseKind
    unit: str | None = None
    """The organisation unit whose KPIs the criteria read (default: the whole organisation)."""
    developers: list[str] = Field(default_factory=list)
    """The cohort (developer names of the organisation)."""
    size: int | None = Field(None, ge=1)
    """The cohort's planned size (10 for the pilot, 50 for a department)."""
    criteria: list[ExitCriterion] = Field(default_factory=list)


class RolloutSection(StrictModel):
    """The rollout plan (see ``docs/experiments.md#rollout``)."""

    phases: list[RolloutPhase] = Field(default_factory=list)
    baselines: dict[str, float] = Field(default_factory=dict)
    """Baseline values of metrics, for criteria ``relative_to_baseline``."""
    experiments: dict[str, str] = Field(default_factory=dict)
    """Experiment name -> its report JSON (``orchestra experiment report --out``)."""
    experiment_files: list[str] = Field(default_factory=list)
    """Experiment files (YAML, relative to ``orchestra.yaml``) the dashboard's experiments
    page shows; each one's runs are read from ``<file>.results.jsonl``."""
    survey_round: str | None = Field(None, max_length=64)
    """The survey round ``satisfaction`` is read from (default: the latest opened)."""
