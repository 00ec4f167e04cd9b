"""Granting free slots: the policy asked again and again until nobody more may start, the
quotas a topology needs, and each unit's recorded agent-seconds per hour."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestra.scheduling.allocation import nested_minimums
from orchestra.scheduling.forecast import forecast_demand
from orchestra.scheduling.policies import next_demand
from orchestra.scheduling.units import Demand, Limits, Quotas, Running

HOUR = 3600.0


def grant_all(
    topology: str,
    queue: Sequence[Demand],
    running: Running,
    limits: Limits,
    quotas: Quotas | None,
) -> list[Demand]:
    """Every demand that gets a slot now, in the order ``topology`` grants them;
    ``running`` counts them as started."""
    waiting = list(queue)
    granted: list[Demand] = []
    while (chosen := next_demand(topology, waiting, running, limits, quotas)) is not None:
        granted.append(chosen)
        running.start(chosen.placement)
        waiting.remove(chosen)
    return granted


def topology_quotas(
    topology: str,
    quotas: Quotas | None,
    tribes_of: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
) -> Quotas | None:
    """The quotas ``topology`` schedules with: the allocation's, plus for
    ``enterprise_mesh`` each region's quota split into its tribes' minimums."""
    if quotas is None or topology != "enterprise_mesh":
        return quotas
    return Quotas(quotas.level, quotas.slots, nested_minimums(quotas.slots, tribes_of, weights))


def hourly_seconds(
    spans: Iterable[tuple[str, float, float]], start: float, hours: int
) -> dict[str, list[float]]:
    """Agent-seconds per unit in each of ``hours`` hours from ``start`` (epoch seconds),
    from ``(unit, began, ended)`` spans (a span over several hours counts in each)."""
    buckets: dict[str, list[float]] = {}
    end = start + hours * HOUR
    for unit, began, ended in spans:
        series = buckets.setdefault(unit, [0.0] * hours)
        at = max(began, start)
        stop = min(ended, end)
        while at < stop:
            hour = int((at - start) // HOUR)
            edge = min(start + (hour + 1) * HOUR, stop)
            series[hour] += edge - at
            at = edge
    return buckets


def forecast_slots(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each unit's expected agents at once in the hour after its hourly history (daily
    seasons; Holt-Winters once two days are recorded)."""
    return {
        unit: forecast_demand(series, season=24, horizon=1).at(0) / HOUR
        for unit, series in history.items()
    }
