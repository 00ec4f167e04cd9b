"""The engine's durable building blocks, used inside workflows.

:func:`checkpoint` records a step, :func:`run_agents` runs agent steps as child workflows
on this process's agent queue, and :func:`pipeline_workflow` registers a pipeline's entry
point as a DBOS workflow (at import, so it is registered before the runtime launches).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dbos import DBOS, SetWorkflowID

from orchestra.engine.agent import AgentOutcome, AgentRunner, AgentTask
from orchestra.engine.artifacts import run_pool
from orchestra.engine.draining import GATE
from orchestra.engine.run_queue import take_run
from orchestra.engine.services import CHILD_FALLBACK_S, ChildSignals, EngineServices, services
from orchestra.engine.slots import agent_slot
from orchestra.tools import WritePolicy

POLL_S = 0.05
"""How often the engine polls DBOS for queue work and child results (seconds)."""

Workflow = Callable[[str], Mapping[str, Any]]
"""A pipeline's DBOS workflow: run id -> the run's outcome (a small JSON-able mapping)."""


def checkpoint(name: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as a DBOS step named ``name``: its result is recorded and replayed.

    While the worker drains, a new step waits at the gate (:mod:`.draining`); once it
    has lost its lease, a step's result is not recorded."""

    def fenced() -> Any:
        result = fn()
        GATE.check()
        return result

    with GATE.step():
        return DBOS.run_step({"name": name, "retries_allowed": False}, fenced)


@DBOS.workflow(name="orchestra.agent")
def agent_workflow(run_id: str, task_ref: str) -> dict[str, Any]:
    """One agent step as a child workflow: its model calls and tool calls are DBOS steps."""
    svc = services()
    try:
        table = svc.slot_table()
        if table is None or svc.org_slots is None:
            return _agent_step(svc, run_id, task_ref)
        # Wait for one of the organisation's slots (the stage's cap, the developer's limit,
        # the topology's order and quotas), hold it while the agent runs.
        placement = svc.org_slots.placement(run_pool(svc.artifacts, run_id))
        with agent_slot(table, placement):
            return _agent_step(svc, run_id, task_ref)
    finally:
        # DBOS writes the result just after this returns; the parent's get_result then
        # polls at POLL_S for that short gap only.
        workflow_id = DBOS.workflow_id
        if workflow_id is not None:
            svc.children.mark_done(workflow_id)


def _agent_step(svc: EngineServices, run_id: str, task_ref: str) -> dict[str, Any]:
    task = AgentTask(**svc.artifacts.get_json(run_id, task_ref))
    run = svc.runs.get(run_id)
    svc.runs.start_step(task.step_id, run_id, task.phase, task.agent)
    profile = svc.agents_for(run_id).get(task.agent)
    policy = WritePolicy(
        allowed=tuple(task.allowed_writes) if task.allowed_writes is not None else None,
        protected=frozenset(task.protected),
        reason=task.write_reason,
    )
    runner = AgentRunner(
        svc.client, svc.artifacts, svc.runs, checkpoint=checkpoint, retry=svc.model_retry()
    )
    outcome = runner.run(task, profile.prompt, list(profile.tools), svc.toolbox(run, policy))
    svc.runs.finish_step(
        run_id,
        task.step_id,
        status=outcome.status,
        stop_reason=outcome.status,
        summary=outcome.summary[:2000],
        transcript_ref=outcome.transcript_ref,
    )
    return outcome.to_dict()


def run_agents(run_id: str, tasks: Sequence[AgentTask]) -> list[AgentOutcome]:
    """Run agent steps as child workflows on the agent queue (concurrently, bounded)."""
    svc = services()
    handles = []
    for task in tasks:
        ref = svc.artifacts.put_json(
            run_id, f"tasks/{task.step_id.replace(':', '_')}.json", task.__dict__, "task"
        )
        # Children are named after the run's current workflow: the run id itself, or the
        # workflow that continues a run stopped by its budget (``run-...~2``, see
        # EngineRuntime.continue_run), whose re-run steps must not find the old results.
        parent = DBOS.workflow_id or run_id
        with SetWorkflowID(f"{parent}:{task.step_id}"):
            handles.append(DBOS.enqueue_workflow(svc.queue_name, agent_workflow, run_id, ref))
    outcomes = []
    for handle in handles:
        _await_child(svc.children, handle.get_workflow_id())
        # DBOS polls for a child's result once a second by default: most of a second lost
        # per agent group on the critical path. The child has returned by now, so poll at
        # the queue's interval for the moment until DBOS has written its result.
        outcomes.append(AgentOutcome.from_dict(handle.get_result(polling_interval_sec=POLL_S)))
    return outcomes


def _await_child(children: ChildSignals, workflow_id: str) -> None:
    """Block until child ``workflow_id`` has returned: its in-process notice, or else a
    status check every :data:`CHILD_FALLBACK_S` (a child run before a restart)."""
    while True:
        GATE.park()
        if _child_ended(workflow_id) or children.wait(workflow_id, CHILD_FALLBACK_S):
            GATE.park()
            return


def _child_ended(workflow_id: str) -> bool:
    # Inside a workflow DBOS records every status query as a step; a varying number of
    # them would break replay. Run the check in an empty context: outside any workflow.
    def status() -> str | None:
        found = DBOS.get_workflow_status(workflow_id)
        return None if found is None else found.status

    return contextvars.Context().run(status) not in {"PENDING", "ENQUEUED", "DELAYED"}


def pipeline_workflow(
    name: str,
) -> Callable[[Callable[[EngineServices, str], Mapping[str, Any]]], Workflow]:
    """Register ``execute(services, run_id)`` as the DBOS workflow ``name``.

    Use it at module level in the pipeline's own module: DBOS must know a workflow by
    name before the runtime launches, so that a resumed run finds it. The returned
    function (``run_id -> outcome``) is what a :class:`~orchestra.engine.Pipeline` hands
    the engine as its ``workflow``.
    """

    def register(execute: Callable[[EngineServices, str], Mapping[str, Any]]) -> Workflow:
        def entry(run_id: str) -> Mapping[str, Any]:
            svc = services()
            try:
                take_run(svc, run_id)  # taken from the shared run queue: key, pool, worker
                outcome = execute(svc, run_id)
            except SystemExit:
                raise  # the worker drained: the run continues elsewhere (with a new key)
            except BaseException:
                svc.end_run(run_id)
                raise
            # Ended, failed or cancelled: the run's key stops working (a resume gets a
            # new one). Revoking an already revoked key on a replay changes nothing.
            svc.end_run(run_id)
            return outcome

        entry.__name__ = entry.__qualname__ = f"workflow_{execute.__name__}"
        entry.__module__ = execute.__module__
        entry.__doc__ = execute.__doc__
        registered: Workflow = DBOS.workflow(name=name)(entry)
        return registered

    return register


def registered_workflow_name(workflow: Workflow) -> str | None:
    """The DBOS name ``workflow`` was registered under, or ``None`` if it never was."""
    name = getattr(workflow, "dbos_function_name", None)
    return str(name) if name is not None else None
