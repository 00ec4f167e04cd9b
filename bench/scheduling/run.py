"""Scheduling benchmark: one generated week of demand (100 developers, 3 tribes, 9 squads)
replayed through every topology and allocation mode at equal capacity.

Reports per policy: wait p50/p95 per tribe and overall (per squad in ``--json``),
utilisation, the share of slots left idle while steps waited, Jain's fairness index over
developers, the longest wait, and violations (which must be 0). ``python -m
bench.scheduling.run [--capacity N] [--per-developer K] [--seed S] [--json PATH]``.
A simulation: the figures are the scheduler core's, not a cluster's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.scheduling.demand import TRIBES, WEEK, week_of_demand
from bench.scheduling.simulate import Outcome, simulate
from orchestra.scheduling import Limits

POLICIES = [
    ("single_node", "static"),
    ("mesh", "static"),
    *[
        (topology, mode)
        for topology in ("hierarchical", "federated_hierarchical", "enterprise_mesh")
        for mode in ("static", "dynamic", "predictive")
    ],
]
"""single_node and mesh have no quotas, so their allocation mode changes nothing."""


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when all values are equal, 1/n when one takes everything."""
    arr = np.asarray(values, dtype=float)
    return float(arr.sum() ** 2 / (len(arr) * (arr**2).sum())) if len(arr) else 1.0


def summarise(out: Outcome, capacity: int, start: float) -> dict[str, Any]:
    """The report of one policy's outcome."""
    waits = np.asarray([w for _, w, _ in out.waits])
    by_unit: dict[str, list[float]] = defaultdict(list)
    service: dict[str, list[float]] = defaultdict(list)
    for who, wait, duration in out.waits:
        by_unit[who.tribe].append(wait)
        by_unit[who.squad].append(wait)
        # Each developer's share of time served: 1 with no waiting.
        service[who.developer].append(duration / (wait + duration))
    return {
        "steps": len(waits),
        "wait_p50_s": float(np.percentile(waits, 50)),
        "wait_p95_s": float(np.percentile(waits, 95)),
        "units": {
            unit: {"p50_s": float(np.percentile(w, 50)), "p95_s": float(np.percentile(w, 95))}
            for unit, w in sorted(by_unit.items())
        },
        "utilisation": out.busy / (capacity * (out.end - start)),
        "idle_while_waiting": (
            out.idle_while_waiting / (capacity * out.waiting_time) if out.waiting_time else 0.0
        ),
        "jain_developers": jain([float(np.mean(v)) for v in service.values()]),
        "longest_wait_s": float(waits.max()),
        "violations": dict(out.violations),
        "forecast_fits": dict(out.forecast_methods),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    tribes = list(TRIBES)
    head = (
        "| policy | p50 s | p95 s | "
        + " | ".join(f"{t} p50/p95 s" for t in tribes)
        + " | utilisation | idle slots while waiting | Jain | longest s | violations |"
    )
    lines = [head, "|" + " --- |" * (8 + len(tribes))]
    for name, r in results.items():
        cells = [f"{r['units'][t]['p50_s']:.0f} / {r['units'][t]['p95_s']:.0f}" for t in tribes]
        lines.append(
            f"| {name} | {r['wait_p50_s']:.0f} | {r['wait_p95_s']:.0f} | "
            + " | ".join(cells)
            + f" | {r['utilisation']:.1%} | {r['idle_while_waiting']:.1%} | "
            f"{r['jain_developers']:.3f} | "
            f"{r['longest_wait_s']:.0f} | {sum(r['violations'].values())} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every policy over the generated week and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacity", type=int, default=20)
    parser.add_argument("--per-developer", type=int, default=2)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--interval", type=float, default=900.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    history = week_of_demand(args.seed + 1000, start=-WEEK)
    asks = week_of_demand(args.seed, start=0.0)
    limits = Limits(args.capacity, args.per_developer)
    print(
        f"{len(asks)} agent steps in the week ({len(history)} in the recorded week before), "
        f"capacity {limits.capacity}, {limits.per_developer} per developer, "
        f"rebalance every {args.interval:.0f} s"
    )
    results: dict[str, dict[str, Any]] = {}
    for topology, mode in POLICIES:
        began = time.perf_counter()
        out = simulate(topology, mode, asks, history, limits, args.interval)
        results[f"{topology}/{mode}"] = summarise(out, limits.capacity, 0.0)
        results[f"{topology}/{mode}"]["sim_s"] = time.perf_counter() - began
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
