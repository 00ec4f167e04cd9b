"""Recovering a dead (or drained) worker's workflows in this process.

Self-hosted DBOS recovers an executor's pending workflows only when a process with the
same executor id starts again (or when asked, ``recover_pending_workflows``), and it puts
them back on the queue they came from. A dead worker's agent steps came from *its* agent
queue, which nobody else serves, and its runs need a gateway key in the process that
continues them. So a reaper that won a dead worker (:mod:`orchestra.engine.workers`)
moves that worker's work here:

- each active run it was working on gets a new key in this process and this process as
  its worker. The dead worker's key of the run is revoked (a zombie's calls are refused);
  a live worker that holds another part of the run keeps its own key
  (:class:`orchestra.accounting.KeyHolding`). That happens when a reaper dies part-way
  through a recovery: one reaper recovers it, another the rest of the first dead worker;
- its **run workflows** go to this worker's runs queue and its **agent steps** to this
  worker's agent queue, so a run and its agents continue in one process (one key);
- its agent steps' **slots** (:mod:`orchestra.engine.slots`) stay as they are: a moved
  step replays, finds its request (waiting or granted) and carries on with it, so a slot is
  never counted twice and the organisation's cap still holds.

A worker that already left (stopped, or recovered) can still have workflows on it: a
straggler moved onto its queue after its recovery (by a reaper that lost its lease
meanwhile, say). Reapers sweep those periodically (:func:`stranded`,
:meth:`~orchestra.engine.workers.WorkerLease.sweep`) the same way.

Only workflows that were running on the dead executor (``PENDING`` with its executor id)
or still waiting on its own queues are moved; DBOS replays each from its recorded steps,
so no completed step runs again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbos import DBOS

from orchestra.engine.runs import ACTIVE_STATUSES, RunNotFound
from orchestra.engine.services import EngineServices


def agent_queue_name(executor_id: str) -> str:
    """The queue a worker's agent steps are enqueued on."""
    return f"agents-{executor_id}"


def runs_queue_name(executor_id: str) -> str:
    """The queue a worker takes recovered run workflows from."""
    return f"runs-{executor_id}"


def run_of(workflow_id: str) -> str:
    """The run a workflow belongs to: ``run-1``, ``run-1~2``, ``run-1:plan-1:slot`` ->
    ``run-1``."""
    return workflow_id.split(":", 1)[0].split("~", 1)[0]


@dataclass(frozen=True)
class Moved:
    """One workflow taken over: where it goes."""

    workflow_id: str
    queue_name: str


def unfinished_on(executor_id: str) -> list[Any]:
    """Workflows running on ``executor_id`` or waiting on its own queues."""
    own_queues = [agent_queue_name(executor_id), runs_queue_name(executor_id)]
    running = DBOS.list_workflows(executor_id=executor_id, status=["PENDING"], load_input=False)
    waiting = DBOS.list_workflows(queue_name=own_queues, status=["ENQUEUED"], load_input=False)
    return [*running, *waiting]


def stranded(gone: list[str]) -> list[str]:
    """Of the executors ``gone`` (workers that stopped or were recovered), those with
    workflows still on them: running with their executor id, or waiting on their own
    queues (a straggler moved there after their recovery). One query over every
    unfinished workflow, however many workers have come and gone."""
    if not gone:
        return []
    left = set(gone)
    by_queue = {q: e for e in gone for q in (agent_queue_name(e), runs_queue_name(e))}
    found: set[str] = set()
    unfinished = DBOS.list_workflows(status=["PENDING", "ENQUEUED"], load_input=False)
    for wf in unfinished:
        if wf.status == "PENDING" and wf.executor_id in left:
            found.add(wf.executor_id)
        elif wf.status == "ENQUEUED" and wf.queue_name in by_queue:
            found.add(by_queue[wf.queue_name])
    return sorted(found)


def plan_recovery(dead: str, services: EngineServices, runs_queue: str) -> list[Moved]:
    """Which of ``dead``'s workflows move, and to which queue."""
    plan = []
    for wf in unfinished_on(dead):
        # Agent steps to this worker's agent queue; a run's workflow (started directly, or
        # recovered onto a runs queue) to its runs queue.
        own_agents = wf.queue_name == agent_queue_name(dead)
        target = services.queue_name if own_agents else runs_queue
        plan.append(Moved(wf.workflow_id, target))
    return plan


def recover_executor(
    dead: str,
    services: EngineServices,
    runs_queue: str,
    still_held: Callable[[], bool] = lambda: True,
) -> int:
    """Move ``dead``'s unfinished workflows to this worker; returns how many moved.

    ``still_held`` renews this worker's lease and says whether it still holds it; it is
    asked before each step of the recovery, which stops when the lease is lost."""
    plan = plan_recovery(dead, services, runs_queue)
    runs = {run_of(m.workflow_id) for m in plan}
    # Keys first: a continued run's first model call must find its key here.
    for run_id in sorted(runs):
        if not still_held():
            return 0
        try:
            row = services.runs.get(run_id)
        except RunNotFound:
            continue
        if row.status not in ACTIVE_STATUSES:
            continue
        services.runs.update(run_id, worker_pid=os.getpid(), worker_host=socket.gethostname())
        services.open_run(run_id, row.budget_usd, fence=(dead,))
    # Children before parents: a parent's replay waits on its children.
    done = 0
    for moved in sorted(plan, key=lambda m: m.queue_name == runs_queue):
        if not still_held():
            break
        DBOS.resume_workflow(moved.workflow_id, queue_name=moved.queue_name)
        done += 1
    return done
