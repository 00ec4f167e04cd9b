"""The shared run queue (PostgreSQL): runs every ``orchestra worker`` takes from.

A run submitted to the queue (``orchestra run --queue``, ``engine.workers.distribute``,
``POST /api/v1/runs`` with it) is recorded and charged where it is submitted (its row, its
first gateway key naming the developer it is charged to, its budget, its agent pool), and
its pipeline workflow is put on one DBOS queue, :data:`RUN_QUEUE`, in the system database.
Every worker that takes queued runs listens to that queue; DBOS hands each run to one of
them, at most ``engine.workers.max_active`` at once per worker. A draining worker stops
dequeuing, so it takes nothing new.

The worker that takes a run prepares, in its own process, what the submitter could not
give it (:func:`take_run`, at the start of every pipeline workflow): a gateway key of its
own for the run (charged to the same developer: a new key of a run is its first key's
developer's), the agents of the run's pool, and its process recorded as the run's worker.
The worktree is created by the pipeline's first step, under the shared state folder.

On SQLite the DBOS system database is a file of one process: there is no queue to share,
and submitting is refused (:func:`require_shared_queue`).
"""

from __future__ import annotations

import logging
import os
import socket

from orchestra import __version__
from orchestra.engine.artifacts import run_pool
from orchestra.engine.draining import GATE
from orchestra.engine.services import EngineServices
from orchestra.errors import EngineError

log = logging.getLogger("orchestra.engine")

RUN_QUEUE = "orchestra-runs"
"""The DBOS queue of runs waiting for a worker (shared by every worker)."""

APPLICATION = "orchestra"
"""The DBOS application name of every Orchestra engine."""

APPLICATION_VERSION = f"orchestra-{__version__}"
"""The DBOS application version workers run (a queued workflow names it)."""


def shared_queue(system_database_url: str) -> bool:
    """Whether ``system_database_url`` can hold a run queue shared by workers."""
    return system_database_url.startswith(("postgresql", "postgres"))


def require_shared_queue(system_database_url: str) -> None:
    """Refuse to queue runs on SQLite: its DBOS database belongs to one process."""
    if not shared_queue(system_database_url):
        raise EngineError(
            "runs are queued for workers only on PostgreSQL: on SQLite the engine is one process",
            hint="run it here with `orchestra run` (no --queue), or set "
            "database.url: postgresql://... and start `orchestra worker`s "
            "(see docs/scheduling.md)",
        )


def enqueue_run(system_database_url: str, workflow_name: str, run_id: str) -> None:
    """Put ``run_id``'s workflow (``workflow_name``) on the shared run queue."""
    from dbos import DBOSClient

    try:
        client = DBOSClient(system_database_url=system_database_url, application_name=APPLICATION)
    except Exception as exc:
        raise EngineError(
            f"cannot reach the engine's system database to queue run {run_id}: {exc}",
            hint="check database.url; a worker (`orchestra worker`) must have started on "
            "this database once, which creates DBOS's tables",
        ) from exc
    try:
        client.enqueue(
            {
                "queue_name": RUN_QUEUE,
                "workflow_name": workflow_name,
                "workflow_id": run_id,
                "app_version": APPLICATION_VERSION,
            },
            run_id,
        )
    except Exception as exc:
        raise EngineError(
            f"queueing run {run_id} failed: {exc}",
            hint="a worker (`orchestra worker`) must have started on this database once, "
            "which creates DBOS's tables",
        ) from exc
    finally:
        client.destroy()


def take_run(svc: EngineServices, run_id: str) -> None:
    """Make ``run_id`` this process's run before its workflow goes on (called at the start
    of every pipeline workflow, and again on each replay).

    A run started, resumed or recovered here already has its key (:meth:`EngineServices.
    open_run`): only a ``queued`` status is set to ``running``. A run taken from the shared
    queue gets, here: a new gateway key (charged, like every later key of a run, to the
    developer of its first key, made where it was submitted), its pool's agents, and this
    process as its worker. A draining worker parks instead (the workflow stays with this
    worker for a reaper to move; ``SystemExit`` once the worker has stopped)."""
    if run_id in svc.held_runs:
        row = svc.runs.get(run_id)
        if row.status == "queued":
            svc.runs.update(run_id, status="running")
        return
    GATE.park()
    row = svc.runs.get(run_id)
    svc.runs.update(
        run_id, status="running", worker_pid=os.getpid(), worker_host=socket.gethostname()
    )
    developer = run_pool(svc.artifacts, run_id)
    if developer is not None and svc.pools is not None:
        svc.run_agents[run_id] = svc.pools(developer)
    svc.open_run(run_id, row.budget_usd)
    log.info("worker on queue %s took run %s from the run queue", svc.queue_name, run_id)
