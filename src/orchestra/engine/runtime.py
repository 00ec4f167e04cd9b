"""The engine runtime: DBOS lifecycle, the agent workflow, and starting runs.

DBOS keeps its registry of workflows and its instance at module level; that is the one
process-wide binding Orchestra accepts. :class:`EngineRuntime` owns it: ``launch()``
binds the services workflows use, ``shutdown()`` releases them.

Each process uses its own DBOS executor id and its own agent queue, so a second
``orchestra run`` never picks up (and double-executes) another process's work. A run
whose process died is continued explicitly with :meth:`EngineRuntime.resume`, or by a
restarted ``orchestra serve`` (:mod:`orchestra.engine.serving`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

from orchestra import __version__
from orchestra.config.schema import OrchestraConfig
from orchestra.engine.agent import AgentOutcome, AgentRunner, AgentTask
from orchestra.engine.agents import AgentSource
from orchestra.engine.artifacts import ArtifactStore
from orchestra.engine.model import ModelClient
from orchestra.engine.runs import ACTIVE_STATUSES, FINAL_STATUSES, RunStore
from orchestra.errors import EngineError
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.tools.sandbox import CommandLimits
from orchestra.tools.toolbox import Toolbox, WritePolicy
from orchestra.tools.workspace import Workspace

POLL_S = 0.05
"""How often the engine polls DBOS for queue work and child results (seconds)."""

CHILD_FALLBACK_S = 1.0
"""How often a parent checks a child's status when no in-process notice arrives."""


@dataclass
class ChildSignals:
    """In-process notices that agent child workflows returned.

    A parent used to poll DBOS every 50 ms for each child's result for the whole length
    of the agent step: with many runs waiting, those status queries were a large part of
    the engine's CPU. Children run in this process's queue, so each one says when it
    returns and the parent asks DBOS for the result only then (DBOS still records the
    result as usual). A child this process never ran (a resume after a crash) is caught
    by a status check every :data:`CHILD_FALLBACK_S`.
    """

    _cond: threading.Condition = field(default_factory=threading.Condition)
    _done: set[str] = field(default_factory=set)

    def mark_done(self, workflow_id: str) -> None:
        """Record that ``workflow_id`` returned (or raised) and wake its waiters."""
        with self._cond:
            self._done.add(workflow_id)
            self._cond.notify_all()

    def wait(self, workflow_id: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for ``workflow_id``'s notice; consumes it."""
        with self._cond:
            seen = self._cond.wait_for(lambda: workflow_id in self._done, timeout_s)
            self._done.discard(workflow_id)
            return seen


BudgetSetup = Callable[[str, float], None]
"""(run id, dollars) -> creates the gateway budget scoped to the run."""


@dataclass
class EngineServices:
    """What workflows reach for while they run in this process."""

    config: OrchestraConfig
    database: Database
    home: Path
    client: ModelClient
    agents: AgentSource
    runs: RunStore
    artifacts: ArtifactStore
    queue_name: str
    budget_setup: BudgetSetup | None = None
    knowledge: Any | None = None
    """An ``orchestra.knowledge.KnowledgeStore`` when available."""
    cost_source: Any | None = None
    """Something with ``costs_for_run(run_id) -> dict[step, float]`` (the gateway ledger)."""
    children: ChildSignals = field(default_factory=ChildSignals)
    """Notices that agent child workflows returned (see :func:`run_agents`)."""

    def limits(self) -> CommandLimits:
        engine = self.config.engine
        return CommandLimits(
            timeout_s=engine.command_timeout_s,
            memory_mb=engine.command_memory_mb,
            isolate_network=engine.isolate_network,
        )

    def test_command(self, repo_path: str) -> list[str]:
        override = self.config.engine.repositories.get(Path(repo_path).name)
        if override and override.test_command:
            return list(override.test_command)
        return list(self.config.engine.test_command)

    def allowed_commands(self, repo_path: str) -> list[str]:
        override = self.config.engine.repositories.get(Path(repo_path).name)
        if override and override.allowed_commands is not None:
            return list(override.allowed_commands)
        return list(self.config.engine.allowed_commands)

    def workspace(self, run: RunRow) -> Workspace:
        if not run.worktree_path or not run.branch or not run.base_commit:
            raise EngineError(f"run {run.id} has no workspace yet")
        return Workspace(Path(run.worktree_path), run.branch, run.base_commit)

    def toolbox(self, run: RunRow, policy: WritePolicy) -> Toolbox:
        search = store = None
        if self.knowledge is not None:
            search, store = _knowledge_tools(self.knowledge, run)
        return Toolbox(
            workspace=self.workspace(run),
            home=self.artifacts.run_dir(run.id) / "home",
            test_command=self.test_command(run.repo_path),
            allowed_commands=self.allowed_commands(run.repo_path),
            limits=self.limits(),
            policy=policy,
            knowledge_search=search,
            knowledge_store=store,
        )


def engine_source(run_id: str, agent: str | None = None) -> Any:
    """Where an entry the engine stores came from (``orchestra.knowledge.Source``)."""
    from orchestra.knowledge.models import Source

    return Source(run=run_id, agent=agent, origin="engine")


def _knowledge_tools(knowledge: Any, run: RunRow) -> tuple[Any, Any]:
    project = Path(run.repo_path).name

    def search(query: str, k: int) -> list[str]:
        hits = knowledge.search(query, project=project, k=k)
        return [f"[{hit.entry.kind}] {hit.entry.text}" for hit in hits]

    def store(text: str, kind: str) -> str:
        return str(knowledge.add(text, kind=kind, project=project, source=engine_source(run.id)))

    return search, store


@dataclass
class _Binding:
    services: EngineServices | None = None


_BINDING = _Binding()


def services() -> EngineServices:
    """The services of the launched runtime (inside workflows)."""
    if _BINDING.services is None:
        raise EngineError(
            "the engine runtime is not launched in this process",
            hint="create an EngineRuntime and call launch() before starting runs",
        )
    return _BINDING.services


def checkpoint(name: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as a DBOS step named ``name``: its result is recorded and replayed."""
    return DBOS.run_step({"name": name, "retries_allowed": False}, fn)


@DBOS.workflow(name="orchestra.agent")
def agent_workflow(run_id: str, task_ref: str) -> dict[str, Any]:
    """One agent step as a child workflow: its model calls and tool calls are DBOS steps."""
    svc = services()
    try:
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
    profile = svc.agents.get(task.agent)
    policy = WritePolicy(
        allowed=tuple(task.allowed_writes) if task.allowed_writes is not None else None,
        protected=frozenset(task.protected),
        reason=task.write_reason,
    )
    runner = AgentRunner(svc.client, svc.artifacts, svc.runs, checkpoint=checkpoint)
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
        with SetWorkflowID(f"{run_id}:{task.step_id}"):
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
    while not _child_ended(workflow_id):
        if children.wait(workflow_id, CHILD_FALLBACK_S):
            return


def _child_ended(workflow_id: str) -> bool:
    # Inside a workflow DBOS records every status query as a step; a varying number of
    # them would break replay. Run the check in an empty context: outside any workflow.
    def status() -> str | None:
        found = DBOS.get_workflow_status(workflow_id)
        return None if found is None else found.status

    return contextvars.Context().run(status) not in {"PENDING", "ENQUEUED", "DELAYED"}


def check_repository(repo: Path) -> Path:
    """``repo`` resolved, or a refusal when it is not the root of a git repository."""
    repo = repo.resolve()
    if not (repo / ".git").exists():
        raise EngineError(
            f"{repo} is not a git repository",
            hint="pass --repo the root of a git repository with at least one commit",
        )
    return repo


def default_system_database_url(database_url: str, home: Path) -> str:
    """SQLite app database -> a SQLite DBOS file next to it; PostgreSQL -> the same server."""
    if database_url.startswith(("postgresql", "postgres")):
        return "postgresql://" + database_url.split("://", 1)[1]
    return f"sqlite:///{home / 'dbos.sqlite'}"


@dataclass
class EngineRuntime:
    """Launches DBOS for this process and starts, waits for, resumes and cancels runs."""

    services: EngineServices
    system_database_url: str
    max_concurrent_agents: int = 4
    executor_id: str = field(
        default_factory=lambda: (
            f"orchestra-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
    )
    polling_interval_s: float = POLL_S

    def launch(self) -> None:
        """Start DBOS (creating its system tables) and bind the services for workflows."""
        if _BINDING.services is not None:
            raise EngineError(
                "an engine runtime is already launched in this process",
                hint="call shutdown() on it first",
            )
        # Workflow modules register their workflows on import; import before launch.
        import orchestra.pipelines.test_first  # noqa: F401

        config: DBOSConfig = {
            "name": "orchestra",
            "system_database_url": self.system_database_url,
            "executor_id": self.executor_id,
            "application_version": f"orchestra-{__version__}",
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.05,
        }
        _BINDING.services = self.services
        # DBOS binds its console handler to the stderr of its first launch; drop it so this
        # launch logs to the current stderr (a second run in one process, the CLI runner).
        dbos_log = logging.getLogger("dbos")
        for handler in list(dbos_log.handlers):
            if handler.name == "__dbos_console_log_handler__":
                dbos_log.removeHandler(handler)
        try:
            DBOS(config=config)
            DBOS.launch()
            DBOS.register_queue(
                self.services.queue_name,
                worker_concurrency=self.max_concurrent_agents,
                polling_interval_sec=self.polling_interval_s,
            )
        except Exception:
            _BINDING.services = None
            # A half-launched DBOS keeps its background threads polling the system
            # database; stop them, or they outlive this runtime (and its folder).
            with contextlib.suppress(Exception):
                DBOS.destroy(destroy_registry=False)
            raise

    def shutdown(self, wait_s: int = 5) -> None:
        """Stop DBOS and unbind; workflows still running after ``wait_s`` seconds stay
        PENDING for a resume (cancelled ones use the wait to reach their next step)."""
        try:
            DBOS.destroy(destroy_registry=False, workflow_completion_timeout_sec=wait_s)
            # DBOS stops its executor without waiting for workflow threads still inside a
            # step; left alone they reach DBOS (or the database) after it is gone and log
            # tracebacks from a dead runtime. Their next step fails at once, so join them.
            join_workflow_threads(timeout_s=wait_s + 30)
        finally:
            _BINDING.services = None

    def __enter__(self) -> EngineRuntime:
        self.launch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- runs ------------------------------------------------------------------------
    def start_run(
        self,
        task: str,
        repo: Path,
        *,
        run_id: str | None = None,
        budget_usd: float | None = None,
    ) -> str:
        """Record a run and start its workflow; returns the run id at once."""
        from orchestra.pipelines.test_first import test_first_workflow

        if not task.strip():
            raise EngineError("the task is empty", hint='say what to build: orchestra run "..."')
        repo = check_repository(repo)
        run_id = run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        budget = self.services.config.engine.run_budget_usd if budget_usd is None else budget_usd
        self.services.runs.create(
            id=run_id,
            task=task.strip(),
            pipeline="test-first",
            repo_path=str(repo),
            branch=f"orchestra/{run_id}",
            worktree_path=str(self.services.artifacts.run_dir(run_id) / "worktree"),
            status="running",
            phase="queued",
            budget_usd=budget,
            worker_pid=os.getpid(),
            worker_host=socket.gethostname(),
        )
        if budget is not None and self.services.budget_setup is not None:
            self.services.budget_setup(run_id, budget)
        with SetWorkflowID(run_id):
            DBOS.start_workflow(test_first_workflow, run_id)
        return run_id

    def wait(self, run_id: str, timeout_s: float | None = None) -> RunRow:
        """Block until the run's workflow ends; returns its final row."""
        handle: Any = DBOS.retrieve_workflow(run_id)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = handle.get_status().status
            if status not in {"PENDING", "ENQUEUED"}:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise EngineError(f"run {run_id} still running after {timeout_s}s")
            time.sleep(0.1)
        if status == "ERROR":
            row = self.services.runs.get(run_id)
            if row.status in ACTIVE_STATUSES:
                try:
                    handle.get_result()
                except Exception as exc:  # the workflow's own error, recorded by DBOS
                    self.services.runs.update(
                        run_id, status="failed", failure_reason=f"engine error: {exc}"
                    )
        return self.services.runs.get(run_id)

    def resume(self, run_id: str) -> None:
        """Continue a run whose process stopped: its completed steps are not repeated."""
        row = self.services.runs.get(run_id)
        if row.status in FINAL_STATUSES:
            raise EngineError(
                f"run {row.id} already ended ({row.status})",
                hint="start a new run with `orchestra run`",
            )
        if (
            row.worker_pid
            and row.worker_host == socket.gethostname()
            and row.worker_pid != os.getpid()
            and _pid_alive(row.worker_pid)
        ):
            raise EngineError(
                f"run {row.id} is still being worked on by process {row.worker_pid}",
                hint="wait for it, or stop that process first",
            )
        self.services.runs.update(row.id, worker_pid=os.getpid(), worker_host=socket.gethostname())
        # Children first: the parent's replay waits on them, and they belong to the dead
        # executor's queue, so they are re-enqueued on this process's queue.
        pending = DBOS.list_workflows(workflow_id_prefix=row.id, status=["PENDING", "ENQUEUED"])
        for wf in pending:
            if wf.workflow_id != row.id:
                DBOS.resume_workflow(wf.workflow_id, queue_name=self.services.queue_name)
        DBOS.resume_workflow(row.id)

    def resume_orphaned(self) -> list[str]:
        """Resume every running run whose worker process on this host is gone.

        What ``orchestra serve`` calls at startup, so a restart continues runs.
        """
        resumed = []
        for row in orphaned_runs(self.services.runs):
            self.resume(row.id)
            resumed.append(row.id)
        return resumed

    def cancel(self, run_id: str) -> None:
        """Stop a run: its workflow and agents stop at their next step."""
        row = self.services.runs.get(run_id)
        if row.status in FINAL_STATUSES:
            raise EngineError(f"run {row.id} already ended ({row.status})")
        for wf in DBOS.list_workflows(workflow_id_prefix=row.id):
            if wf.status in {"PENDING", "ENQUEUED"}:
                DBOS.cancel_workflow(wf.workflow_id)
        self.services.runs.update(row.id, status="cancelled", failure_reason="cancelled by user")


WORKFLOW_THREAD_PREFIX = "dbos-executor-"
"""Name prefix of the threads DBOS runs workflows and steps in."""

_DBOS_THREAD_MARKS = (
    WORKFLOW_THREAD_PREFIX,
    "dbos-background",
    "queue-worker-",
    "(_run_event_loop)",
    "(run_notification_listener)",
    "(queue_thread)",
    "(dynamic_scheduler_loop)",
)


def dbos_threads() -> list[threading.Thread]:
    """Threads DBOS started in this process that are still alive (workflow threads and
    its background threads); none should remain once every runtime has shut down."""
    return [
        t
        for t in threading.enumerate()
        if t.is_alive() and any(mark in t.name for mark in _DBOS_THREAD_MARKS)
    ]


def workflow_threads() -> list[threading.Thread]:
    """DBOS workflow threads alive in this process."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(WORKFLOW_THREAD_PREFIX) and t.is_alive()
    ]


def join_workflow_threads(timeout_s: float) -> list[threading.Thread]:
    """Wait up to ``timeout_s`` for DBOS workflow threads to end; returns those left."""
    deadline = time.monotonic() + timeout_s
    for thread in workflow_threads():
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    left = workflow_threads()
    if left:
        logging.getLogger("orchestra.engine").warning(
            "%d workflow thread(s) still running after the engine stopped", len(left)
        )
    return left


def orphaned_runs(runs: RunStore) -> list[RunRow]:
    """Active runs recorded by a worker process on this host that no longer exists."""
    orphans = []
    for row in runs.list_runs(limit=1000):
        if row.status not in ACTIVE_STATUSES or row.worker_host != socket.gethostname():
            continue
        if row.worker_pid and (row.worker_pid == os.getpid() or _pid_alive(row.worker_pid)):
            continue
        orphans.append(row)
    return orphans


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
