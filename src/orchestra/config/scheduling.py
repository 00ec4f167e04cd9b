"""Configuration section ``engine.scheduling``: which agent step gets the next of the
organisation's agent slots (``docs/scheduling.md``).

The topology is the organisation stage's unless set here; the allocation mode sets the
quotas of the topology's level (squads, tribes or regions).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from orchestra.config.models import StrictModel

TopologyName = Literal[
    "single_node", "mesh", "hierarchical", "federated_hierarchical", "enterprise_mesh"
]
AllocationMode = Literal["static", "dynamic", "predictive"]


class SchedulingSettings(StrictModel):
    """Topology policy and allocation mode of the organisation's agent slots."""

    topology: TopologyName | None = None
    """The policy choosing the next agent step; unset, the organisation stage's topology."""
    allocation: AllocationMode = "static"
    """How quotas are set: ``static`` (from ``weights``), ``dynamic`` (every
    ``interval_s`` from each unit's queue depth plus running agents) or ``predictive``
    (every ``interval_s`` from each unit's forecast demand, Holt-Winters over the recorded
    slot history, plus its queue)."""
    interval_s: float = Field(default=900.0, gt=0)
    """How often dynamic and predictive quotas are recomputed (seconds)."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Static quotas' weights per unit of the topology's level (squad, tribe or region);
    unset: each unit's headcount. Units not named weigh 0 (they still get one slot)."""
    history_days: int = Field(default=14, ge=1, le=366)
    """Days of slot history the predictive forecasts are fitted on."""
    poll_s: float = Field(default=0.1, gt=0, le=10)
    """How often an agent step waiting for a slot looks whether it was granted."""
    tick_s: float = Field(default=1.0, gt=0, le=60)
    """How often a worker with waiting steps grants slots itself (besides on every request
    and release), and checks for slots held by steps that ended without releasing them."""

    @field_validator("weights")
    @classmethod
    def _weights_not_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = sorted(unit for unit, weight in weights.items() if weight < 0)
        if bad:
            raise ValueError(f"engine.scheduling.weights must not be negative: {', '.join(bad)}")
        return weights
