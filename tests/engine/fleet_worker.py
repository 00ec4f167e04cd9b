"""An engine worker for tests/engine/test_workers.py: one process of a fleet on a shared
PostgreSQL database and state folder, calling a scripted upstream through its own
gateway, or through a shared one.

``python -m tests.engine.fleet_worker HOME DATABASE_URL UPSTREAM_URL AGENTS_DIR READY
[RUN_ID ...]``: writes READY once its engine is up (its executor id in it), starts the
given runs, then serves (its reaper recovers dead workers' runs) until SIGTERM, which
drains it. ``$FLEET_YAML`` is added to the configuration (heartbeats, caps). With
``$FLEET_GATEWAY_URL`` the engine calls that gateway (``engine.gateway_url``: separate
``orchestra gateway`` processes) with the developer key in ``$ORCHESTRA_GATEWAY_KEY``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from orchestra.demo import scripted_engine
from orchestra.engine.agents import RosterAgents
from orchestra.testing.processes import write_ready
from orchestra.testing.scripted import SAMPLE_TASK

GATEWAY_URL_ENV = "FLEET_GATEWAY_URL"
GATEWAY_KEY_ENV = "ORCHESTRA_GATEWAY_KEY"


def main() -> int:
    home, url, upstream_url, agents_dir, ready = sys.argv[1:6]
    run_ids = sys.argv[6:]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gateway_url = os.environ.get(GATEWAY_URL_ENV)
    with scripted_engine(
        Path(home),
        database_url=url,
        upstream_url=upstream_url,
        agents=RosterAgents.load(Path(agents_dir)),
        extra_yaml=os.environ.get("FLEET_YAML", ""),
        gateway=(gateway_url, os.environ[GATEWAY_KEY_ENV]) if gateway_url else None,
    ) as (runtime, _services):
        write_ready(ready, runtime.executor_id)
        for run_id in run_ids:
            repo = Path(home) / "repos" / run_id
            runtime.start_run(SAMPLE_TASK, repo, run_id=run_id)
        stop.wait()
        idle = runtime.drain()
        print(f"drained idle={idle}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
