"""What the scheduler reasons about: where a demand sits in the organisation, the queue of
demands, the agents running per unit, and the limits and quotas that bound them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestra.errors import SchedulingError

Level = Literal["developer", "squad", "tribe", "region"]
"""A level of the organisation a quota or a count applies to."""

LEVELS: tuple[Level, ...] = ("developer", "squad", "tribe", "region")


@dataclass(frozen=True)
class Placement:
    """Where a developer sits: their squad, its tribe and the tribe's region."""

    developer: str
    squad: str = "-"
    tribe: str = "-"
    region: str = "-"

    def unit(self, level: Level) -> str:
        """The name of this placement's unit at ``level``."""
        value: str = getattr(self, level)
        return value


@dataclass(frozen=True)
class Demand:
    """One agent step waiting for a slot."""

    id: str
    placement: Placement
    queued_at: float
    """When it was queued (any monotonic clock); FIFO order within a unit."""


@dataclass
class Running:
    """Agents running now, counted in total and per unit at every level."""

    total: int = 0
    counts: dict[Level, Counter[str]] = field(
        default_factory=lambda: {level: Counter() for level in LEVELS}
    )

    def at(self, level: Level, unit: str) -> int:
        """Agents running in ``unit`` at ``level``."""
        return self.counts[level][unit]

    def start(self, placement: Placement) -> None:
        """Count one more agent for ``placement``."""
        self.total += 1
        for level in LEVELS:
            self.counts[level][placement.unit(level)] += 1

    def finish(self, placement: Placement) -> None:
        """Count one agent fewer for ``placement``; refused if none was running there."""
        if self.at("developer", placement.developer) <= 0:
            raise SchedulingError(
                f"no agent of {placement.developer} is running",
                hint="finish only an agent that was started",
            )
        self.total -= 1
        for level in LEVELS:
            self.counts[level][placement.unit(level)] -= 1


@dataclass(frozen=True)
class Limits:
    """The organisation's hard limits: the stage's cap and the per-developer limit."""

    capacity: int
    """Agents running at once across the organisation (the stage's maximum)."""
    per_developer: int
    """Agents one developer may run at once (``agents_per_developer``)."""

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_developer < 1:
            raise SchedulingError(
                f"limits must be at least 1 (capacity {self.capacity}, "
                f"per developer {self.per_developer})",
                hint="set max_concurrent_agents and agents_per_developer to 1 or more",
            )


@dataclass(frozen=True)
class Quotas:
    """Slots per unit at one level; what a slot means depends on the topology (a hard
    quota for ``hierarchical`` squads and ``enterprise_mesh`` regions, a guaranteed minimum
    for ``federated_hierarchical`` tribes)."""

    level: Level
    slots: Mapping[str, int]
    minimums: Mapping[str, int] = field(default_factory=dict)
    """Guaranteed minimums one level down (tribes within an ``enterprise_mesh`` region)."""

    def of(self, unit: str) -> int:
        """The quota of ``unit`` (0 for a unit the quotas do not name)."""
        return self.slots.get(unit, 0)

    def check(self, limits: Limits) -> None:
        """Refuse quotas that add up to more than the organisation's cap."""
        total = sum(self.slots.values())
        if total > limits.capacity or any(v < 0 for v in self.slots.values()):
            raise SchedulingError(
                f"{self.level} quotas add up to {total}, over the cap of {limits.capacity}",
                hint="lower the quotas so that their sum fits the stage's maximum of agents",
            )
