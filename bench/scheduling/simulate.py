"""A discrete-event simulation of agent slots, driven by the scheduler core itself.

Every event (a step asked for, a step finished) may rebalance the quotas (dynamic and
predictive modes, on their interval) and then fills free slots with
:func:`orchestra.scheduling.next_demand` until it picks none. Each start is checked
independently of the policy: over the cap, over the per-developer limit, over a hard quota
in force, or (federated) given to a tribe at its minimum while a tribe under its minimum
had a demand that could start: each is a violation.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.scheduling.demand import DAY, HOUR, Ask
from orchestra.scheduling import (
    QUOTA_LEVEL,
    Allocation,
    Demand,
    Level,
    Limits,
    Placement,
    Quotas,
    Running,
    forecast_demand,
    nested_minimums,
    next_demand,
    within_limits,
)


@dataclass
class HourlyHistory:
    """Agent-seconds asked per unit per hour, recorded as steps finish (as the engine's
    run history would have them), and Holt-Winters forecasts refitted once a day."""

    level: Level
    start: float
    buckets: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    fitted_day: int | None = None
    forecasts: dict[str, tuple[float, ...]] = field(default_factory=dict)
    methods: Counter[str] = field(default_factory=Counter)

    def record(self, ask: Ask) -> None:
        """Count a finished step in the hour it was asked for."""
        hour = int((ask.at - self.start) // HOUR)
        series = self.buckets[ask.placement.unit(self.level)]
        series.extend([0.0] * (hour + 1 - len(series)))
        series[hour] += ask.duration

    def __call__(self, unit: str, now: float) -> float:
        """Forecast slots ``unit`` needs in the hour containing ``now``."""
        day = int((now - self.start) // DAY)
        if day != self.fitted_day:
            self._refit(day)
        hour = int((now - self.start) // HOUR) - day * 24
        values = self.forecasts.get(unit, ())
        return values[min(hour, len(values) - 1)] / HOUR if values else 0.0

    def _refit(self, day: int) -> None:
        self.fitted_day = day
        hours = day * 24
        for unit, series in self.buckets.items():
            history = (series + [0.0] * hours)[:hours]
            fc = forecast_demand(history, season=24, horizon=24)
            self.methods[fc.method] += 1
            self.forecasts[unit] = fc.values


@dataclass
class Outcome:
    """What one policy did with the week."""

    waits: list[tuple[Placement, float, float]] = field(default_factory=list)
    """(who, wait, duration) per started step."""
    busy: float = 0.0
    end: float = 0.0
    idle_while_waiting: float = 0.0
    """Slot-seconds left idle while a step waited (hard quotas do this; FIFO never)."""
    waiting_time: float = 0.0
    """Seconds during which at least one step waited."""
    violations: Counter[str] = field(default_factory=Counter)
    forecast_methods: Counter[str] = field(default_factory=Counter)


def _quotas(
    topology: str, alloc: Allocation | None, tribes_of: dict[str, list[str]], weights: Counter[str]
) -> Quotas | None:
    if alloc is None:
        return None
    quotas = alloc.quotas
    if topology == "enterprise_mesh":
        mins = nested_minimums(quotas.slots, tribes_of, {k: float(v) for k, v in weights.items()})
        return Quotas(quotas.level, quotas.slots, mins)
    return quotas


def _check(
    topology: str,
    d: Demand,
    before: Running,
    queue: Sequence[Demand],
    quotas: Quotas | None,
    limits: Limits,
    out: Outcome,
) -> None:
    p = d.placement
    if before.total + 1 > limits.capacity:
        out.violations["cap"] += 1
    if before.at("developer", p.developer) + 1 > limits.per_developer:
        out.violations["per developer"] += 1
    if quotas is None:
        return
    if topology in ("hierarchical", "enterprise_mesh"):
        unit = p.unit(quotas.level)
        if before.at(quotas.level, unit) + 1 > quotas.of(unit):
            out.violations["quota"] += 1
    if topology == "federated_hierarchical" and before.at("tribe", p.tribe) >= quotas.of(p.tribe):
        waiting_under = any(
            before.at("tribe", q.placement.tribe) < quotas.of(q.placement.tribe)
            and within_limits(q, before, limits)
            for q in queue
        )
        if waiting_under:
            out.violations["minimum"] += 1


def _allocation(
    mode: str,
    level: Level | None,
    people: set[Placement],
    history: Sequence[Ask],
    limits: Limits,
    interval_s: float,
) -> tuple[Allocation | None, HourlyHistory | None]:
    if level is None:
        return None, None
    recorder = None
    if mode == "predictive":
        recorder = HourlyHistory(level, start=min(a.at for a in history))
        for ask in history:
            recorder.record(ask)
    weights = Counter(p.unit(level) for p in people)
    alloc = Allocation(
        mode,
        level,
        limits.capacity,
        {k: float(v) for k, v in weights.items()},
        interval_s=interval_s,
        forecaster=recorder,
    )
    return alloc, recorder


def simulate(
    topology: str,
    mode: str,
    asks: Sequence[Ask],
    history: Sequence[Ask],
    limits: Limits,
    interval_s: float = 900.0,
) -> Outcome:
    """Replay ``asks`` through ``topology`` with ``mode`` allocation (``history``: earlier
    recorded steps, for the predictive forecasts)."""
    out = Outcome()
    level = QUOTA_LEVEL[topology]
    people = {a.placement for a in (*history, *asks)}
    tribes_of: dict[str, list[str]] = defaultdict(list)
    for tribe, region in sorted({(p.tribe, p.region) for p in people}):
        tribes_of[region].append(tribe)
    tribe_heads = Counter(p.tribe for p in people)
    alloc, recorder = _allocation(mode, level, people, history, limits, interval_s)
    running = Running()
    queue: list[Demand] = []
    ask_of: dict[str, Ask] = {}
    finishing: list[tuple[float, int, str]] = []
    i = 0
    now = asks[0].at if asks else 0.0
    while i < len(asks) or finishing:
        finish_next = bool(finishing) and (i >= len(asks) or finishing[0][0] <= asks[i].at)
        upcoming = finishing[0][0] if finish_next else asks[i].at
        if queue:
            out.waiting_time += upcoming - now
            out.idle_while_waiting += (limits.capacity - running.total) * (upcoming - now)
        if finish_next:
            now, _, ident = heapq.heappop(finishing)
            done = ask_of.pop(ident)
            running.finish(done.placement)
            if recorder is not None:
                recorder.record(done)
        else:
            ask = asks[i]
            now = ask.at
            ident = f"a{i}"
            ask_of[ident] = ask
            queue.append(Demand(ident, ask.placement, now))
            i += 1
        if alloc is not None and level is not None:
            alloc.rebalance(
                now,
                Counter(d.placement.unit(level) for d in queue),
                dict(running.counts[level]),
            )
        quotas = _quotas(topology, alloc, tribes_of, tribe_heads)
        while running.total < limits.capacity and queue:
            d = next_demand(topology, queue, running, limits, quotas)
            if d is None:
                break
            queue.remove(d)
            _check(topology, d, running, queue, quotas, limits, out)
            running.start(d.placement)
            ask = ask_of[d.id]
            out.waits.append((d.placement, now - d.queued_at, ask.duration))
            out.busy += ask.duration
            out.end = max(out.end, now + ask.duration)
            heapq.heappush(finishing, (now + ask.duration, int(d.id[1:]), d.id))
    if recorder is not None:
        out.forecast_methods = recorder.methods
    return out
