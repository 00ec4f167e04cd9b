"""One soak worker: an engine on the shared PostgreSQL database and state folder, taking
runs from the soak's inbox (a folder of run ids; a rename claims one) while fewer than
MAX_ACTIVE runs are active in it (those it started and those it took over from dead
workers) and fewer than ``$SOAK_ACTIVE_LIMIT`` in the whole soak (what a shared run queue's
global concurrency does in a deployment), until SIGTERM drains it.

``python -m bench.soak.worker HOME DATABASE_URL UPSTREAM_URL READY MAX_ACTIVE``;
``$SOAK_YAML`` is added to the configuration. With ``$SOAK_GATEWAY_URL`` (and a developer
key in ``$ORCHESTRA_GATEWAY_KEY``) the engine calls that shared gateway (the soak's
replicas) instead of one of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path

from sqlalchemy import func, select

from orchestra.demo import scripted_engine
from orchestra.engine.runs import ACTIVE_STATUSES
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.testing.processes import write_ready
from orchestra.testing.scripted import SAMPLE_TASK


def soak_task(run_id: str) -> str:
    """The sample task, marked with its run (every agent's first message carries it)."""
    return f"{SAMPLE_TASK} [soak {run_id}]"


def claim(home: Path, executor_id: str) -> str | None:
    """Take one run id from the inbox (``None`` when it is empty)."""
    claimed = home / "claimed" / executor_id
    claimed.mkdir(parents=True, exist_ok=True)
    for entry in sorted((home / "inbox").iterdir()):
        try:
            entry.rename(claimed / entry.name)
        except FileNotFoundError:  # another worker took it first
            continue
        return entry.name
    return None


def active(database: Database) -> tuple[int, int]:
    """Active runs ``(in the soak, in this process)``: a run's worker is the process that
    started it, or the reaper that took it over from a dead worker."""
    here = (RunRow.worker_pid == os.getpid()) & (RunRow.worker_host == socket.gethostname())
    with database.session() as session:
        total, mine = session.execute(
            select(func.count(), func.count().filter(here))
            .select_from(RunRow)
            .where(RunRow.status.in_(ACTIVE_STATUSES))
        ).one()
    return int(total), int(mine)


def main() -> int:
    home, url, upstream_url, ready, max_active = sys.argv[1:6]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gateway_url = os.environ.get("SOAK_GATEWAY_URL")
    with scripted_engine(
        Path(home),
        database_url=url,
        upstream_url=upstream_url,
        extra_yaml=os.environ["SOAK_YAML"],
        gateway=(gateway_url, os.environ["ORCHESTRA_GATEWAY_KEY"]) if gateway_url else None,
    ) as (runtime, services):
        write_ready(ready, runtime.executor_id)
        limit = int(os.environ.get("SOAK_ACTIVE_LIMIT", "0")) or None
        while not stop.wait(0.2):
            total, mine = active(services.database)
            if mine >= int(max_active) or (limit is not None and total >= limit):
                continue
            run_id = claim(Path(home), runtime.executor_id)
            if run_id is not None:
                repo = Path(home) / "repos" / run_id
                runtime.start_run(soak_task(run_id), repo, run_id=run_id)
        runtime.drain()
    return 0


if __name__ == "__main__":
    sys.exit(main())
