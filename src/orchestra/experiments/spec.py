"""The experiment file: the suite, the arms (configuration overlays), k, the budget, the
quality gates and the decision rule. Validated with Pydantic (a trust boundary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestra.config import OrchestraConfig
from orchestra.experiments.errors import SuiteInvalid


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Arm(_Strict):
    """One configuration the suite runs on."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    overlay: dict[str, Any] = Field(default_factory=dict)
    """Merged over ``orchestra.yaml`` (mappings deeply, other values replaced): tiers,
    teams' tier mappings, models and providers — e.g. routine tiers on a local model."""
    description: str = ""


class Gates(_Strict):
    """The design's quality gates, each configurable; ``None`` leaves a gate out."""

    latency_s: float | None = 5.0
    """Model-call latency bound ..."""
    latency_share: float = Field(0.9, gt=0, le=1)
    """... that this share of the candidate's calls must meet (5 s for 90%)."""
    coverage_min: float | None = Field(0.9, ge=0, le=1)
    """Mean changed-line coverage of the candidate's runs."""
    bug_rate_margin: float | None = Field(0.10, ge=0)
    """The candidate's failure rate on hidden tests may exceed the baseline's by this much,
    relatively (0.10: within 10%)."""
    satisfaction_min: float | None = Field(0.8, ge=0, le=1)
    """Developer satisfaction must be above this ..."""
    satisfaction: float | None = Field(None, ge=0, le=1)
    """... as measured by a survey and given here; unknown (the gate cannot pass) if not."""


class DecisionRule(_Strict):
    """How the pass-rate difference decides: non-inferiority by ``margin``."""

    margin: float = Field(0.10, gt=0, lt=1)
    """The largest drop in pass rate (absolute) that still ships."""
    confidence: float = Field(0.95, gt=0.5, lt=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, gt=0.5, lt=1)
    resamples: int = Field(10_000, ge=1000, le=1_000_000)
    seed: int = 20260101


class ExperimentSpec(_Strict):
    """An experiment file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    suite: str
    """The suite file (relative to the experiment file)."""
    arms: list[Arm] = Field(min_length=2)
    baseline: str | None = None
    """The arm the others are compared with (default: the first)."""
    replicates: int = Field(1, ge=1, le=100)
    """k: each task runs k times on every arm."""
    budget_usd: float | None = Field(None, gt=0)
    """The whole experiment's budget; pairs left when it is spent are not run."""
    run_budget_usd: float | None = Field(None, gt=0)
    """Each run's budget (default: ``engine.run_budget_usd``)."""
    run_timeout_s: float = Field(1800, gt=0)
    gates: Gates = Field(default_factory=Gates)
    decision: DecisionRule = Field(default_factory=DecisionRule)

    @model_validator(mode="after")
    def _arms_named_once(self) -> ExperimentSpec:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("each arm needs its own name")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not an arm")
        return self

    @property
    def baseline_arm(self) -> str:
        """The baseline arm's name."""
        return self.baseline or self.arms[0].name

    @classmethod
    def load(cls, path: Path) -> ExperimentSpec:
        """Read and validate an experiment file (YAML or JSON)."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls.model_validate(data)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise SuiteInvalid(
                f"cannot read experiment {path}: {exc}",
                hint="see docs/experiments.md for the experiment file's fields",
            ) from exc


def _merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return overlay


def arm_config(base: OrchestraConfig, arm: Arm) -> OrchestraConfig:
    """``base`` with ``arm``'s overlay merged over it, validated again."""
    data = base.model_dump(mode="python", exclude_unset=True, by_alias=True)
    try:
        return OrchestraConfig.model_validate(_merge(data, arm.overlay))
    except ValidationError as exc:
        raise SuiteInvalid(
            f"arm {arm.name!r}: its overlay does not make a valid configuration: {exc}",
            hint="an overlay holds orchestra.yaml keys (tiers, models, providers, teams)",
        ) from exc
