"""Slot-table benchmark: what one release-and-grant costs in the engine's slot table, per
topology, with many steps waiting (the organisation of ``bench.scheduling``: 100
developers, 9 squads, 3 tribes, 2 regions).

For each topology (static quotas by headcount) and backend: ``--waiting`` steps ask for a
slot, a first dispatch fills the cap, then ``--cycles`` times one granted step gives its
slot back and a dispatch grants the next (what every agent step's end does). Reports the
milliseconds per cycle (median) and the ratio to ``single_node`` in the same run; at
another size than the default (``--capacity``, ``--waiting``, ``--developers``), each
topology is measured at the default size too, in the same run, and the ratio between the
two printed (what the size costs: the enterprise stage's 1,000 agents, say, with
``--capacity 1000 --waiting 2000 --developers 1000``).
``python -m bench.slots.run [--capacity 20] [--waiting 200] [--developers 100]
[--cycles 100] [--json PATH]``; PostgreSQL too when ``ORCHESTRA_TEST_DATABASE_URL`` (or
``--database-url``) is set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.scheduling.demand import organisation
from bench.soak.run import scratch_database
from orchestra.config import SchedulingSettings
from orchestra.engine.slot_table import SlotPolicy, SlotTable
from orchestra.scheduling import QUOTA_LEVEL, TOPOLOGIES
from orchestra.store import open_database

DEFAULT = {"capacity": 20, "waiting": 200, "developers": 100}
"""The default size: a ratio to it is printed for any other."""


def _cycle_ms(
    url: str, topology: str, capacity: int, waiting: int, developers: int, cycles: int
) -> float:
    database = open_database(url)
    try:
        people = {p.developer: p for p in organisation(developers)}
        level = QUOTA_LEVEL[topology]
        units = tuple(sorted({p.unit(level) for p in people.values()})) if level else ()
        policy = SlotPolicy(capacity, 2, topology, SchedulingSettings(), people, units)
        table = SlotTable(database, policy, "bench", True, lambda ids: {})
        names = sorted(people)
        for n in range(waiting):
            table.request(f"step-{n}", people[names[n % len(names)]])
        granted = table.dispatch()
        times = []
        for _ in range(cycles):
            if not granted:
                break
            began = time.perf_counter()
            table.release(granted.pop(0))
            granted += table.dispatch()
            times.append((time.perf_counter() - began) * 1000)
        return statistics.median(times)
    finally:
        database.dispose()


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacity", type=int, default=DEFAULT["capacity"])
    parser.add_argument("--waiting", type=int, default=DEFAULT["waiting"])
    parser.add_argument("--developers", type=int, default=DEFAULT["developers"])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--database-url", default=os.environ.get("ORCHESTRA_TEST_DATABASE_URL"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if min(args.capacity, args.waiting, args.developers, args.cycles) < 1:
        parser.error("--capacity, --waiting, --developers and --cycles must be at least 1")
    size = {"capacity": args.capacity, "waiting": args.waiting, "developers": args.developers}
    sizes = [size] if size == DEFAULT else [size, DEFAULT]
    results: list[dict[str, Any]] = []
    backends = ["sqlite"] + (["postgresql"] if args.database_url else [])
    for backend in backends:
        base = None
        for topology in TOPOLOGIES:
            ms, *default = (_measure(backend, args, topology, s) for s in sizes)
            base = base or ms
            result = {"backend": backend, "topology": topology, "ms": ms, "ratio": ms / base}
            line = f"{backend:10} {topology:24} {ms:8.2f} ms per release+grant  {ms / base:5.2f}x"
            if default:
                result |= {"ms_default_size": default[0], "size_ratio": ms / default[0]}
                line += f"  ({ms / default[0]:5.2f}x the default size's {default[0]:.2f} ms)"
            results.append(result)
            print(line, flush=True)
    with open("/proc/loadavg") as load:
        print(f"load average: {load.read().strip()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _measure(backend: str, args: argparse.Namespace, topology: str, size: dict[str, int]) -> float:
    """Milliseconds per release-and-grant of ``topology`` at ``size`` on ``backend``."""
    dims = (size["capacity"], size["waiting"], size["developers"], args.cycles)
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            return _cycle_ms(f"sqlite:///{Path(folder) / 'slots.db'}", topology, *dims)
    with scratch_database(args.database_url) as url:
        return _cycle_ms(url, topology, *dims)


if __name__ == "__main__":
    main()
