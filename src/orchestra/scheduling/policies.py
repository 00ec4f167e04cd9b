"""Topologies as scheduling policies: which queued demand gets the next free agent slot.

Every policy first applies the organisation's hard limits (the stage's cap and the
per-developer limit); then:

- ``single_node``: first come, first served.
- ``mesh``: one shared pool, fair share between developers: the demand of the developer
  running the fewest agents goes first (FIFO among equals).
- ``hierarchical``: per-squad queues; a squad never runs more than its quota (the quotas
  add up to at most the cap); the squad furthest under its quota goes first.
- ``federated_hierarchical``: per-tribe pools with guaranteed minimums. A tribe under its
  minimum with demand goes first; when none waits, idle capacity is lent to the tribe
  least over its minimum. Agent steps are not pre-empted, so lent capacity is taken back
  as borrowed agents finish: each freed slot goes to a tribe under its minimum first.
- ``enterprise_mesh``: per-region pools with hard quotas, federated within each region
  (tribe minimums, lending only inside the region).

The functions are pure: the same queue, counts and quotas give the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from orchestra.errors import SchedulingError
from orchestra.scheduling.units import Demand, Level, Limits, Quotas, Running

TOPOLOGIES = (
    "single_node",
    "mesh",
    "hierarchical",
    "federated_hierarchical",
    "enterprise_mesh",
)
"""The topologies, smallest organisation first (as the stages order them)."""

QUOTA_LEVEL: dict[str, Level | None] = {
    "single_node": None,
    "mesh": None,
    "hierarchical": "squad",
    "federated_hierarchical": "tribe",
    "enterprise_mesh": "region",
}
"""The level each topology's quotas apply to (``None``: no quotas)."""


def within_limits(demand: Demand, running: Running, limits: Limits) -> bool:
    """Whether starting ``demand`` keeps the cap and the per-developer limit."""
    return (
        running.total < limits.capacity
        and running.at("developer", demand.placement.developer) < limits.per_developer
    )


def _ratio(running: int, slots: int) -> float:
    return running / slots if slots > 0 else float("inf")


def _first(
    candidates: Iterable[Demand], key: Callable[[Demand], tuple[float, ...]]
) -> Demand | None:
    return min(candidates, key=key, default=None)


def _federated(
    candidates: list[Demand], running: Running, level: Level, minimums: dict[str, int] | None
) -> Demand | None:
    def minimum(d: Demand) -> int:
        return (minimums or {}).get(d.placement.unit(level), 0)

    def key(d: Demand) -> tuple[float, ...]:
        return (_ratio(running.at(level, d.placement.unit(level)), minimum(d)), d.queued_at)

    under = [d for d in candidates if running.at(level, d.placement.unit(level)) < minimum(d)]
    return _first(under or candidates, key)


def next_demand(
    topology: str,
    queue: Sequence[Demand],
    running: Running,
    limits: Limits,
    quotas: Quotas | None = None,
) -> Demand | None:
    """The demand that gets the next free slot under ``topology``, or ``None`` when no
    queued demand may start now."""
    candidates = [d for d in queue if within_limits(d, running, limits)]
    level = QUOTA_LEVEL.get(topology, "missing")
    if level == "missing":
        raise SchedulingError(
            f"unknown topology {topology!r}", hint=f"use one of {', '.join(TOPOLOGIES)}"
        )
    if not candidates:
        return None
    if topology == "single_node":
        return _first(candidates, lambda d: (d.queued_at,))
    if topology == "mesh":
        return _first(
            candidates, lambda d: (running.at("developer", d.placement.developer), d.queued_at)
        )
    if quotas is None or quotas.level != level:
        raise SchedulingError(
            f"{topology} needs quotas per {level}",
            hint="allocate quotas (static, dynamic or predictive) before scheduling",
        )
    if topology == "federated_hierarchical":
        return _federated(candidates, running, "tribe", dict(quotas.slots))
    # hierarchical squads and enterprise_mesh regions: hard quotas.
    assert level is not None
    fits = [
        d
        for d in candidates
        if running.at(level, d.placement.unit(level)) < quotas.of(d.placement.unit(level))
    ]
    if topology == "hierarchical":
        return _first(
            fits,
            lambda d: (
                _ratio(running.at("squad", d.placement.squad), quotas.of(d.placement.squad)),
                d.queued_at,
            ),
        )
    return _federated(fits, running, "tribe", dict(quotas.minimums))
