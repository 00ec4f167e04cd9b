"""An experiment as a DBOS workflow: one step per (task, arm, replicate), resumable.

``orchestra experiment run`` starts the workflow ``orchestra.experiment`` with the plan of
runs not yet recorded in the results file. Each run is one DBOS step whose output (the
run's measurement) DBOS records, so a killed experiment resumes from its records:

- the process died (killed, the machine rebooted): the workflow stays ``PENDING``;
  :func:`resume_experiment` re-executes it, finished steps return their recorded
  measurements and only the rest run;
- a step raised: the workflow ended in ``ERROR``; :func:`resume_experiment` forks it from
  the step that raised (``ID~2``, then ``~3``...), the steps before it replayed.

Each step also appends its measurement to the results file, and first looks there: a run
recorded just before a crash (before DBOS wrote the step's output) is not run again.

The runs themselves happen where the bound :data:`RunOne` says — the CLI runs each in its
own process (its own engine, its own DBOS executor), since one process holds one DBOS.
Before each step the workflow sums the cost recorded so far; once it reaches the
experiment's budget no further run starts and the outcome says so.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

from orchestra import __version__
from orchestra.engine import CONTINUED, current_workflow, next_workflow, pid_alive
from orchestra.experiments.errors import ExperimentError
from orchestra.experiments.runner import append_result, read_results
from orchestra.experiments.spec import ExperimentSpec
from orchestra.experiments.suite import Suite

WORKFLOW = "orchestra.experiment"
"""The DBOS workflow's name."""
UNFINISHED = ("PENDING", "ENQUEUED", "ERROR")

RunOne = Callable[[dict[str, Any], str, str, int], dict[str, Any]]
"""Runs one (task, arm, replicate) of a plan and returns its measurement (JSON)."""

_bound: dict[str, RunOne] = {}


def bind_runner(run_one: RunOne) -> None:
    """Where this process's experiment steps run their runs."""
    _bound["run_one"] = run_one


def _runner() -> RunOne:
    found = _bound.get("run_one")
    if found is None:
        raise ExperimentError(
            "no experiment runner is bound in this process",
            hint="run experiments with `orchestra experiment run`",
        )
    return found


def _step(plan: dict[str, Any], task: str, arm: str, replicate: int) -> dict[str, Any]:
    results = Path(plan["results"])
    for recorded in read_results(results):
        if (recorded.task, recorded.arm, recorded.replicate) == (task, arm, replicate):
            return recorded.to_json()
    measured = _runner()(plan, task, arm, replicate)
    append_result(results, measured)
    return measured


@DBOS.workflow(name=WORKFLOW)
def experiment_workflow(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the plan's runs in order, one step each, until its budget is spent."""
    budget = plan.get("budget_usd")
    spent = float(plan.get("spent_usd") or 0.0)
    ran = 0
    for task, arm, replicate in plan["runs"]:
        if budget is not None and spent >= budget:
            break
        measured = DBOS.run_step(
            {"name": f"run {task} {arm} {replicate}", "retries_allowed": False},
            partial(_step, plan, task, arm, int(replicate)),
        )
        spent += float(measured.get("cost_usd") or 0.0)
        ran += 1
    return {
        "ran": ran,
        "not_run": len(plan["runs"]) - ran,
        "spent_usd": spent,
        "budget_usd": budget,
        "experiment": plan["experiment"],
        "results": plan["results"],
    }


@dataclass(frozen=True)
class DurableOutcome:
    """What an experiment workflow did."""

    workflow_id: str
    ran: int
    """Runs the workflow's steps finished (replayed ones included)."""
    not_run: int
    """Runs left out because the budget was spent."""
    spent_usd: float
    budget_usd: float | None
    experiment: str = ""
    """The experiment file (absolute)."""
    results: str = ""
    """Its results file (absolute)."""

    @property
    def stopped_by_budget(self) -> bool:
        """Whether the budget stopped it before every run was made."""
        return self.not_run > 0

    def message(self) -> str:
        """One line for people."""
        text = f"{self.workflow_id}: {self.ran} runs, spent ${self.spent_usd:.4f}"
        if self.stopped_by_budget:
            text += (
                f"; stopped at its budget (${self.budget_usd:g}): {self.not_run} runs not run"
                " — raise budget_usd and run it again to go on"
            )
        return text


def experiment_plan(
    spec: ExperimentSpec,
    suite: Suite,
    *,
    experiment: Path,
    results: Path,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The runs ``results`` does not hold yet, arm by arm, and the cost already spent.

    ``options`` travel with the plan to the runner (the CLI's configuration file and
    whether the models replay the tasks' commits)."""
    recorded = read_results(results)
    done = {(m.task, m.arm, m.replicate) for m in recorded}
    runs = [
        [task.id, arm.name, r]
        for arm in spec.arms
        for r in range(spec.replicates)
        for task in suite.tasks
        if (task.id, arm.name, r) not in done
    ]
    return {
        "experiment": str(experiment.resolve()),
        "results": str(results.resolve()),
        "runs": runs,
        "budget_usd": spec.budget_usd,
        "spent_usd": sum(m.cost_usd or 0.0 for m in recorded),
        "options": dict(options or {}),
    }


def _queue(executor_id: str) -> str:
    return f"experiments-{executor_id}"


@dataclass(frozen=True)
class ExperimentHost:
    """DBOS launched in this process for experiment workflows (see :func:`experiment_host`)."""

    executor_id: str

    @property
    def queue_name(self) -> str:
        """The queue resumed experiments run on in this process."""
        return _queue(self.executor_id)


@contextmanager
def experiment_host(
    system_database_url: str, *, pid: int | None = None
) -> Iterator[ExperimentHost]:
    """Launch DBOS on ``system_database_url`` for experiment workflows; it listens to its
    own queue only (never to an engine's agent queue). Its executor id names this host and
    process (``pid``, default this one's), so no other process resumes its workflows while
    it lives."""
    pid = os.getpid() if pid is None else pid
    executor = f"experiment-{socket.gethostname()}-{pid}-{uuid.uuid4().hex[:6]}"
    config: DBOSConfig = {
        "name": "orchestra",
        "system_database_url": system_database_url,
        "executor_id": executor,
        "application_version": f"orchestra-{__version__}",
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.05,
    }
    DBOS(config=config)
    try:
        DBOS.listen_queues([_queue(executor)])
        DBOS.launch()
        DBOS.register_queue(_queue(executor), worker_concurrency=1, polling_interval_sec=0.2)
        yield ExperimentHost(executor)
    finally:
        DBOS.destroy(destroy_registry=False)


def _prefix(name: str) -> str:
    return f"experiment/{name}/"


def _outcome(workflow_id: str, result: dict[str, Any]) -> DurableOutcome:
    return DurableOutcome(
        workflow_id,
        int(result["ran"]),
        int(result["not_run"]),
        float(result["spent_usd"]),
        result.get("budget_usd"),
        str(result.get("experiment", "")),
        str(result.get("results", "")),
    )


def start_experiment(name: str, plan: dict[str, Any]) -> DurableOutcome:
    """Start a new experiment workflow for ``plan`` and wait for it."""
    workflow_id = f"{_prefix(name)}{uuid.uuid4().hex[:8]}"
    with SetWorkflowID(workflow_id):
        handle = DBOS.start_workflow(experiment_workflow, plan)
    return _outcome(workflow_id, handle.get_result())


def unfinished_experiment(name: str) -> str | None:
    """The latest workflow of experiment ``name`` that did not finish, if any."""
    found = DBOS.list_workflows(workflow_id_prefix=_prefix(name), status=list(UNFINISHED))
    latest = {current_workflow(wf.workflow_id.split(CONTINUED, 1)[0]) for wf in found}
    unfinished = [w for w in latest if _status(w) in UNFINISHED]
    return max(unfinished, key=_created) if unfinished else None


def _status(workflow_id: str) -> str | None:
    status = DBOS.get_workflow_status(workflow_id)
    return None if status is None else str(status.status)


def _created(workflow_id: str) -> int:
    status = DBOS.get_workflow_status(workflow_id)
    return int(status.created_at or 0) if status is not None else 0


def _failed_step(workflow_id: str) -> int:
    """The step to fork an ``ERROR`` workflow from: the one that raised (or the next)."""
    steps = DBOS.list_workflow_steps(workflow_id)
    failed = [s["function_id"] for s in steps if s.get("error") is not None]
    if failed:
        return int(min(failed))
    return max((int(s["function_id"]) for s in steps), default=0) + 1


def _refuse_if_running(workflow_id: str) -> None:
    """Refuse to resume a workflow whose process (on this host) still runs it."""
    status = DBOS.get_workflow_status(workflow_id)
    executor = str(getattr(status, "executor_id", "") or "")
    parts = executor.rsplit("-", 2)
    here = len(parts) == 3 and parts[0] == f"experiment-{socket.gethostname()}"
    pid = int(parts[1]) if here and parts[1].isdigit() else None
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        raise ExperimentError(
            f"experiment {workflow_id} is still running in process {pid}",
            hint="wait for it, or stop that process first",
        )


def resume_experiment(workflow_id: str, host: ExperimentHost) -> DurableOutcome:
    """Resume an experiment workflow (its latest continuation): finished steps are
    replayed from their records, not run again."""
    if not workflow_id.startswith("experiment/"):
        raise ExperimentError(
            f"{workflow_id!r} is not an experiment workflow",
            hint="`orchestra experiment list` shows them",
        )
    current = current_workflow(workflow_id.split(CONTINUED, 1)[0])
    status = _status(current)
    if status is None:
        raise ExperimentError(
            f"no experiment workflow {workflow_id!r}", hint="`orchestra experiment list`"
        )
    if status == "ERROR":
        forked = next_workflow(current.split(CONTINUED, 1)[0], current)
        with SetWorkflowID(forked):
            handle = DBOS.fork_workflow(current, _failed_step(current), queue_name=host.queue_name)
        return _outcome(forked, handle.get_result())
    if status in ("PENDING", "ENQUEUED"):
        _refuse_if_running(current)
        handle = DBOS.resume_workflow(current, queue_name=host.queue_name)
        return _outcome(current, handle.get_result())
    handle = DBOS.retrieve_workflow(current)
    return _outcome(current, handle.get_result())


def list_experiments(name: str | None = None) -> list[dict[str, Any]]:
    """Experiment workflows (id, status, created), newest first."""
    prefix = _prefix(name) if name else "experiment/"
    found = DBOS.list_workflows(workflow_id_prefix=prefix)
    rows = [
        {"id": wf.workflow_id, "status": str(wf.status), "created_at": wf.created_at}
        for wf in found
    ]
    return sorted(rows, key=lambda r: r["created_at"] or 0, reverse=True)
