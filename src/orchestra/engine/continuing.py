"""Continuing a run its budget stopped: DBOS forks of the run's workflow and stopped agents.

A run stopped by its budget has ended (its workflow returned, its report is written).
To continue it with a higher budget, each agent step the budget stopped is forked from
its refused model call (the calls it made before are replayed from their records, not
made again), and the run's workflow is forked from the moment it waited for those steps,
with the forks in their place. The workflow running a run is then ``run-...~2`` (then
``~3``...): :func:`current_workflow` names it.
"""

from __future__ import annotations

from dbos import DBOS, SetWorkflowID

from orchestra.errors import EngineError

CONTINUED = "~"
"""Separates a run id from the number of the workflow that continues it (``run-...~2``)."""


def current_workflow(run_id: str) -> str:
    """The id of the workflow running ``run_id`` now: the run id, or the latest workflow
    that continued it after a budget stop."""
    forks = DBOS.list_workflows(workflow_id_prefix=f"{run_id}{CONTINUED}")
    numbers = [
        int(tail)
        for wf in forks
        if (tail := wf.workflow_id[len(run_id) + len(CONTINUED) :]).isdigit()
    ]
    return f"{run_id}{CONTINUED}{max(numbers)}" if numbers else run_id


def next_workflow(run_id: str, current: str) -> str:
    """The id of the workflow that continues ``run_id`` after ``current``."""
    number = int(current.rsplit(CONTINUED, 1)[1]) if current != run_id else 1
    return f"{run_id}{CONTINUED}{number + 1}"


def _stopped_children(workflow_id: str) -> list[tuple[str, int]]:
    """(child id, the step at which the parent took its result) of each agent step of
    ``workflow_id`` that its budget stopped."""
    stopped: dict[str, int] = {}
    for step in DBOS.list_workflow_steps(workflow_id):
        child, output = step["child_workflow_id"], step["output"]
        if child and isinstance(output, dict) and output.get("status") == "budget":
            stopped[child] = max(stopped.get(child, 0), step["function_id"])
    return sorted(stopped.items(), key=lambda item: item[1])


def _refused_call(child_id: str) -> int:
    """The step of agent workflow ``child_id`` that made its last model call (the one
    the budget refused: the agent stopped right after it)."""
    calls = [
        step["function_id"]
        for step in DBOS.list_workflow_steps(child_id, load_output=False)
        if str(step["function_name"]).startswith("model:")
    ]
    if not calls:
        raise EngineError(
            f"agent step {child_id} made no model call to continue from",
            hint="start a new run with `orchestra run`",
        )
    return max(calls)


def fork_past_budget_stop(current: str, new_id: str, queue_name: str) -> None:
    """Start ``new_id``: ``current`` forked where it took the results of the agent steps
    its budget stopped, each of them forked from its refused call on ``queue_name``."""
    stopped = _stopped_children(current)
    if not stopped:
        raise EngineError(
            f"the records of {current} show no agent step stopped by a budget",
            hint="start a new run with `orchestra run`",
        )
    replacements: dict[str, str] = {}
    for child, _waited_at in stopped:
        new_child = new_id + child[len(current) :]
        with SetWorkflowID(new_child):
            DBOS.fork_workflow(child, _refused_call(child), queue_name=queue_name)
        replacements[child] = new_child
    with SetWorkflowID(new_id):
        DBOS.fork_workflow(current, stopped[0][1], replacement_children=replacements)
