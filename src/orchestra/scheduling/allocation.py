"""Allocation modes: how many slots each unit's quota holds, and when it changes.

- static: quotas from configured weights (by default each unit's headcount), fixed.
- dynamic: every ``interval_s`` the quotas are re-apportioned from each unit's queue depth
  plus the agents it is running (its utilisation of what it holds).
- predictive: each unit's demand for the next interval is forecast from its recorded
  history (:mod:`orchestra.scheduling.forecast`, Holt-Winters) and the quotas are set ahead
  of it, plus what is already queued.

Every mode apportions the same capacity, so the modes compare at equal capacity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestra.errors import SchedulingError
from orchestra.scheduling.units import Level, Quotas

ALLOCATION_MODES = ("static", "dynamic", "predictive")
"""The allocation modes."""


def apportion(weights: Mapping[str, float], total: int, floor: int = 1) -> dict[str, int]:
    """Split ``total`` slots between units in proportion to ``weights`` (largest remainder),
    each unit getting at least ``floor``; the parts add up to ``total`` exactly."""
    units = sorted(weights)
    if not units:
        return {}
    if floor * len(units) > total:
        raise SchedulingError(
            f"{total} slots cannot give {len(units)} units {floor} each",
            hint="raise the cap or lower the floor per unit",
        )
    spare = total - floor * len(units)
    clean = {u: max(float(weights[u]), 0.0) for u in units}
    mass = sum(clean.values())
    shares = {u: spare * (clean[u] / mass if mass > 0 else 1 / len(units)) for u in units}
    parts = {u: floor + math.floor(shares[u]) for u in units}
    left = total - sum(parts.values())
    by_remainder = sorted(units, key=lambda u: (-(shares[u] - math.floor(shares[u])), u))
    for unit in by_remainder[:left]:
        parts[unit] += 1
    return parts


@dataclass
class Allocation:
    """Quotas for one level, recomputed by the mode's rule on an interval."""

    mode: str
    level: Level
    capacity: int
    weights: Mapping[str, float]
    """Configured weights (static), and the prior for the other modes."""
    interval_s: float = 900.0
    forecaster: Callable[[str, float], float] | None = None
    """Predictive: expected slots a unit needs in the interval starting at a time."""
    floor: int = 1
    _quotas: dict[str, int] = field(default_factory=dict, init=False)
    _next_at: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ALLOCATION_MODES:
            raise SchedulingError(
                f"unknown allocation mode {self.mode!r}",
                hint=f"use one of {', '.join(ALLOCATION_MODES)}",
            )
        if self.mode == "predictive" and self.forecaster is None:
            raise SchedulingError(
                "predictive allocation needs a forecaster",
                hint="record run history and fit a forecast (orchestra.scheduling.forecast)",
            )
        self._quotas = apportion(self.weights, self.capacity, self.floor)

    @property
    def quotas(self) -> Quotas:
        """The quotas in force."""
        return Quotas(self.level, dict(self._quotas))

    @property
    def next_at(self) -> float:
        """When the quotas are next recomputed (``-inf``: at the next rebalance)."""
        return self._next_at

    def restore(self, quotas: Mapping[str, int], next_at: float) -> None:
        """Take up quotas computed earlier (by this or another worker, recorded in the
        database) and the time they are next recomputed."""
        self._quotas = dict(quotas)
        self._next_at = next_at

    def rebalance(self, now: float, queued: Mapping[str, int], running: Mapping[str, int]) -> bool:
        """Recompute the quotas if the interval has passed; whether they were recomputed."""
        if self.mode == "static" or now < self._next_at:
            return False
        self._next_at = now + self.interval_s
        self._quotas = apportion(self._wanted(now, queued, running), self.capacity, self.floor)
        return True

    def _wanted(
        self, now: float, queued: Mapping[str, int], running: Mapping[str, int]
    ) -> dict[str, float]:
        units = list(self.weights)
        if self.mode == "dynamic":
            return {u: queued.get(u, 0) + running.get(u, 0) for u in units}
        assert self.forecaster is not None
        return {u: self.forecaster(u, now) + queued.get(u, 0) for u in units}


def nested_minimums(
    region_quotas: Mapping[str, int],
    tribes_of: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
) -> dict[str, int]:
    """Guaranteed minimums of the tribes inside each region: each region's quota split by
    the tribes' weights (used by ``enterprise_mesh``)."""
    minimums: dict[str, int] = {}
    for region, quota in region_quotas.items():
        tribes = tribes_of.get(region, ())
        floor = 1 if quota >= len(tribes) else 0
        minimums |= apportion({t: weights.get(t, 1.0) for t in tribes}, quota, floor)
    return minimums
