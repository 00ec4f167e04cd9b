"""A worker of the shared run queue for tests/engine/test_run_queue.py: one process on a
shared PostgreSQL database and state folder, calling a scripted upstream through its own
gateway, taking queued runs until SIGTERM drains it.

``python -m tests.engine.queue_worker HOME DATABASE_URL UPSTREAM_URL AGENTS_DIR READY``:
writes READY once its engine is up (its executor id in it). The engine's log (runs taken,
draining) goes to stderr. ``$FLEET_YAML`` is added to the configuration.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.testing.processes import write_ready


def main() -> int:
    home, url, upstream_url, agents_dir, ready = sys.argv[1:6]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    engine_log = logging.getLogger("orchestra.engine")
    engine_log.addHandler(handler)
    engine_log.setLevel(logging.INFO)
    with scripted_stack(
        Path(home),
        database_url=url,
        upstream_url=upstream_url,
        agents=RosterAgents.load(Path(agents_dir)),
        extra_yaml=os.environ.get("FLEET_YAML", ""),
        take_queued_runs=True,
    ) as stack:
        runtime = stack.runtime
        write_ready(ready, runtime.executor_id)
        stop.wait()
        idle = runtime.drain()
        print(f"drained idle={idle}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
