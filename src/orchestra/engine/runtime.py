"""The engine runtime: DBOS lifecycle and starting, waiting for, resuming and cancelling runs.

The runtime is handed its pipelines (:class:`~orchestra.engine.pipeline.PipelineRegistry`)
and knows them only through the :class:`~orchestra.engine.pipeline.Pipeline` protocol.
``launch()`` binds the services workflows use (:mod:`orchestra.engine.services`),
``shutdown()`` releases them.

Each process uses its own DBOS executor id and its own agent queue, so a second
``orchestra run`` never picks up (and double-executes) another process's work. Agent
steps wait for the organisation's slots, granted by the topology's policy, over every
process on PostgreSQL (:mod:`orchestra.engine.slots`). A run
whose process died is continued explicitly with :meth:`EngineRuntime.resume`, or by a
restarted ``orchestra serve`` (:mod:`orchestra.server.resuming`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

from orchestra.engine.agents import AgentSource
from orchestra.engine.artifacts import POOL_REF
from orchestra.engine.continuing import current_workflow, fork_past_budget_stop, next_workflow
from orchestra.engine.draining import GATE, stop_dequeuing
from orchestra.engine.durable import POLL_S, registered_workflow_name
from orchestra.engine.fleet import FleetMember
from orchestra.engine.pipeline import Pipeline, PipelineRegistry
from orchestra.engine.recovery import unfinished_on
from orchestra.engine.run_policy import require_run_start
from orchestra.engine.run_queue import (
    APPLICATION,
    APPLICATION_VERSION,
    RUN_QUEUE,
    enqueue_run,
    require_shared_queue,
)
from orchestra.engine.runs import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    RunStore,
    resume_command,
    stopped_by_budget,
)
from orchestra.engine.services import EngineServices, bind, unbind
from orchestra.engine.slots import SLOT_CHECK_S
from orchestra.errors import EngineError
from orchestra.policy import Principal
from orchestra.store.tables.engine import RunRow


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


log = logging.getLogger("orchestra.engine")


def new_run_id() -> str:
    """A new run id: when it was made, and six random hex digits."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


@dataclass
class EngineRuntime:
    """Launches DBOS for this process and starts, waits for, resumes and cancels runs."""

    services: EngineServices
    system_database_url: str
    pipelines: PipelineRegistry
    """The pipelines this engine runs (the first is the default)."""
    max_concurrent_agents: int = 4
    executor_id: str = field(
        default_factory=lambda: (
            f"orchestra-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
    )
    polling_interval_s: float = POLL_S
    take_queued_runs: bool = False
    """Take runs from the shared run queue (``orchestra worker`` on PostgreSQL): at most
    ``engine.workers.max_active`` at once (:mod:`orchestra.engine.run_queue`)."""
    _fleet: FleetMember | None = field(default=None, init=False, repr=False)

    def launch(self) -> None:
        """Start DBOS (creating its system tables) and bind the services for workflows."""
        # DBOS must know every workflow by name before launch, or a resumed run cannot
        # find its code: pipeline modules register theirs on import.
        self.pipelines.check_registered()
        if self.take_queued_runs:
            require_shared_queue(self.system_database_url)
        config: DBOSConfig = {
            "name": APPLICATION,
            "system_database_url": self.system_database_url,
            "executor_id": self.executor_id,
            "application_version": APPLICATION_VERSION,
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.05,
        }
        bind(self.services)
        GATE.reset()
        # PostgreSQL: take the executor id's lease first (a live duplicate is refused).
        self._fleet = FleetMember.for_services(self.services, self.executor_id)
        if self._fleet is not None:
            try:
                self._fleet.join()
            except Exception:  # refused: the id is another worker's, leave its row alone
                self._fleet = None
                unbind()
                raise
            self.services.holder = self.executor_id  # a key of its own for each run here
        # DBOS binds its console handler to the stderr of its first launch; drop it so this
        # launch logs to the current stderr (a second run in one process, the CLI runner).
        dbos_log = logging.getLogger("dbos")
        for handler in list(dbos_log.handlers):
            if handler.name == "__dbos_console_log_handler__":
                dbos_log.removeHandler(handler)
        try:
            DBOS(config=config)
            # DBOS queues live in the system database and every process dequeues from
            # every queue it finds there unless told otherwise: another worker would take
            # this process's agent steps (whose worktree and run keys are here).
            DBOS.listen_queues(self._own_queues())
            DBOS.launch()
            DBOS.register_queue(
                self.services.queue_name,
                # With organisation slots every agent step is dequeued at once and waits
                # for its slot in the slot table, where the topology picks who goes next.
                worker_concurrency=(
                    None if self.services.org_slots is not None else self.max_concurrent_agents
                ),
                polling_interval_sec=self.polling_interval_s,
            )
            if self._fleet is not None:
                DBOS.register_queue(self._fleet.runs_queue, polling_interval_sec=RUNS_POLL_S)
                if self.take_queued_runs:
                    DBOS.register_queue(
                        RUN_QUEUE,
                        worker_concurrency=self.services.config.engine.workers.max_active,
                        polling_interval_sec=RUNS_POLL_S,
                        on_conflict="always_update",
                    )
                self._fleet.start_reaping(self.services)
        except Exception:
            if self._fleet is not None:
                self._fleet.leave("stopped")
            unbind()
            # A half-launched DBOS keeps its background threads polling the system
            # database; stop them, or they outlive this runtime (and its folder).
            with contextlib.suppress(Exception):
                DBOS.destroy(destroy_registry=False)
            raise

    @property
    def fleet(self) -> FleetMember | None:
        """This worker's lease, heartbeat and reaper (PostgreSQL, once launched)."""
        return self._fleet

    def _own_queues(self) -> list[str]:
        queues = [self.services.queue_name]
        if self._fleet is not None:
            queues.append(self._fleet.runs_queue)
            if self.take_queued_runs:
                queues.append(RUN_QUEUE)
        return queues

    def shutdown(self, wait_s: int = 5) -> None:
        """Stop DBOS and unbind; workflows still running after ``wait_s`` seconds stay
        PENDING for a resume (cancelled ones use the wait to reach their next step)."""
        leaving = "stopped"
        try:
            if self._fleet is not None and self._fleet.lease is not None:
                self._fleet.lease.stop()  # no reaping while DBOS stops
                # Work still on this worker (a run it took over, a run interrupted) is
                # left to the other workers: their reapers take a drained worker at once.
                with contextlib.suppress(Exception):  # DBOS not up: nothing to leave
                    if unfinished_on(self.executor_id):
                        leaving = "drained"
            DBOS.destroy(destroy_registry=False, workflow_completion_timeout_sec=wait_s)
            GATE.stop()  # threads parked by a lost lease end without recording anything
            # DBOS stops its executor without waiting for workflow threads still inside a
            # step; left alone they reach DBOS (or the database) after it is gone and log
            # tracebacks from a dead runtime. Their next step fails at once, so join them.
            join_workflow_threads(timeout_s=wait_s + 30)
        finally:
            if self._fleet is not None:
                self._fleet.leave(leaving)
                self._fleet = None
            unbind()

    def drain(self, timeout_s: float | None = None) -> bool:
        """Drain this worker (what ``SIGTERM`` does): take no new work, let the steps in
        progress finish and be recorded, stop, and leave the unfinished workflows to the
        other workers at once (``drained``; their reapers do not wait for the lease to
        expire). Returns ``False`` if steps were still running after ``timeout_s``
        (default ``engine.workers.drain_timeout_s``); those are repeated elsewhere."""
        limit = self.services.config.engine.workers.drain_timeout_s
        fleet, self._fleet = self._fleet, None
        try:
            if fleet is not None:
                fleet.mark("draining")
            stop_dequeuing()
            GATE.close()
            log.info("worker %s draining: it takes no new run or step", self.executor_id)
            idle = GATE.wait_idle(limit if timeout_s is None else timeout_s)
            # Workflows between steps (parents waiting for agents, steps awaiting a slot) look
            # again within SLOT_CHECK_S and park at the gate before DBOS goes away.
            time.sleep(SLOT_CHECK_S + POLL_S)
            if fleet is not None and fleet.lease is not None:
                fleet.lease.stop()
            DBOS.destroy(destroy_registry=False)
            GATE.stop()
            join_workflow_threads(timeout_s=30)
        finally:
            if fleet is not None:
                fleet.leave("drained")
            unbind()
        return idle

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
        pipeline: str | None = None,
        principal: Principal | None = None,
        agents: AgentSource | None = None,
        pool: str | None = None,
    ) -> str:
        """Record a run of ``pipeline`` (default: the first registered) and start its
        workflow in this process; returns the run id at once.

        With the engine's policies (``services.policy``), ``start_run`` (when the
        ``principal`` starting the run is named) and each review skip of
        ``engine.skip_reviews`` must be permitted first (see :mod:`.run_policy`): a
        refusal is audited and raises :class:`~orchestra.policy.PolicyDenied`, nothing
        recorded.

        ``agents`` (the pool of the developer ``pool``) replace the engine's agents for
        this run; the pool's developer is recorded with the run so that a resume takes
        agents from the same pool (:func:`run_pool`).
        """
        chosen, run_id = self._record_run(
            task, repo, run_id, budget_usd, pipeline, principal, pool, queued=False
        )
        if agents is not None:
            self.services.run_agents[run_id] = agents
        with SetWorkflowID(run_id):
            DBOS.start_workflow(chosen.workflow, run_id)
        return run_id

    def submit_run(
        self,
        task: str,
        repo: Path,
        *,
        run_id: str | None = None,
        budget_usd: float | None = None,
        pipeline: str | None = None,
        principal: Principal | None = None,
        pool: str | None = None,
    ) -> str:
        """Record a run like :meth:`start_run` (checked, charged and budgeted here) and
        put its workflow on the shared run queue for a worker to take; returns the run id
        at once (its status is ``queued`` until a worker takes it). PostgreSQL only; this
        runtime need not be launched (:mod:`orchestra.engine.run_queue`)."""
        require_shared_queue(self.system_database_url)
        chosen, run_id = self._record_run(
            task, repo, run_id, budget_usd, pipeline, principal, pool, queued=True
        )
        # The submitter's key only recorded who the run is charged to: the worker that
        # takes it makes its own (which revokes this one).
        drop_key = getattr(self.services.client, "drop_key", None)
        if drop_key is not None:
            drop_key(run_id)
        self.services.held_runs.discard(run_id)
        workflow_name = registered_workflow_name(chosen.workflow)
        assert workflow_name is not None  # checked by the registry
        try:
            enqueue_run(self.system_database_url, workflow_name, run_id)
        except EngineError as exc:
            self.services.runs.update(run_id, status="failed", failure_reason=str(exc))
            self.services.end_run(run_id)
            raise
        return run_id

    def _record_run(
        self,
        task: str,
        repo: Path,
        run_id: str | None,
        budget_usd: float | None,
        pipeline: str | None,
        principal: Principal | None,
        pool: str | None,
        *,
        queued: bool,
    ) -> tuple[Pipeline, str]:
        """Check and record a new run, and open its key (charged to the developer its
        first key names); returns its pipeline and id."""
        chosen = self.pipelines.get(pipeline)
        if not task.strip():
            raise EngineError("the task is empty", hint='say what to build: orchestra run "..."')
        repo = check_repository(repo)
        run_id = run_id or new_run_id()
        budget = self.services.config.engine.run_budget_usd if budget_usd is None else budget_usd
        if self.services.policy is not None:
            require_run_start(
                self.services.policy, self.services.config, principal, repo, budget, chosen.name
            )
        self.services.runs.create(
            id=run_id,
            task=task.strip(),
            pipeline=chosen.name,
            repo_path=str(repo),
            branch=f"orchestra/{run_id}",
            worktree_path=str(self.services.artifacts.run_dir(run_id) / "worktree"),
            status="queued" if queued else "running",
            phase="queued",
            budget_usd=budget,
            worker_pid=None if queued else os.getpid(),
            worker_host=None if queued else socket.gethostname(),
        )
        if pool is not None:
            self.services.artifacts.put_json(run_id, POOL_REF, {"developer": pool}, "pool")
        try:
            self.services.open_run(run_id, budget)
        except Exception as exc:
            self.services.runs.update(
                run_id, status="failed", failure_reason=f"the gateway refused the run: {exc}"
            )
            raise
        return chosen, run_id

    def wait(self, run_id: str, timeout_s: float | None = None) -> RunRow:
        """Block until the run's workflow ends; returns its final row."""
        handle: Any = DBOS.retrieve_workflow(current_workflow(run_id))
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

    def resume(
        self,
        run_id: str,
        *,
        budget_usd: float | None = None,
        agents: AgentSource | None = None,
    ) -> None:
        """Continue a run whose process stopped: its completed steps are not repeated.

        With ``budget_usd`` the run's budget becomes that (a run stopped by its budget
        continues with a higher one, see :meth:`continue_run`); with ``agents`` (its
        pool, :func:`run_pool`) the run takes its agents from them."""
        row = self.services.runs.get(run_id)
        if row.status in FINAL_STATUSES:
            hint = (
                f"continue it with a higher budget: {resume_command(row.id)}"
                if stopped_by_budget(row)
                else "start a new run with `orchestra run`"
            )
            raise EngineError(f"run {row.id} already ended ({row.status})", hint=hint)
        if (
            row.worker_pid
            and row.worker_host == socket.gethostname()
            and row.worker_pid != os.getpid()
            and pid_alive(row.worker_pid)
        ):
            raise EngineError(
                f"run {row.id} is still being worked on by process {row.worker_pid}",
                hint="wait for it, or stop that process first",
            )
        budget = row.budget_usd if budget_usd is None else budget_usd
        self.services.runs.update(
            row.id, worker_pid=os.getpid(), worker_host=socket.gethostname(), budget_usd=budget
        )
        if agents is not None:
            self.services.run_agents[row.id] = agents
        self.services.open_run(row.id, budget)
        # Children first: the parent's replay waits on them, and they belong to the dead
        # executor's queue, so they are re-enqueued on this process's queue.
        current = current_workflow(row.id)
        pending = DBOS.list_workflows(workflow_id_prefix=row.id, status=["PENDING", "ENQUEUED"])
        for wf in pending:
            if ":" in wf.workflow_id:
                DBOS.resume_workflow(wf.workflow_id, queue_name=self.services.queue_name)
        DBOS.resume_workflow(current)

    def continue_run(
        self, run_id: str, budget_usd: float, *, agents: AgentSource | None = None
    ) -> None:
        """Continue a run stopped by its budget with ``budget_usd`` (a new key, charged to
        the same developer): the agent steps the budget stopped go on from their refused
        model call, then the rest of the run; nothing done before is repeated
        (:mod:`orchestra.engine.continuing`)."""
        row = self.services.runs.get(run_id)
        if not stopped_by_budget(row):
            raise EngineError(
                f"run {row.id} was not stopped by a budget ({row.status})",
                hint="only a run stopped by its budget continues with --budget; "
                "`orchestra resume RUN` continues a run whose process stopped",
            )
        if row.budget_usd is not None and budget_usd <= row.budget_usd:
            raise EngineError(
                f"the new budget ${budget_usd} is not above the run's ${row.budget_usd}",
                hint=f"pass a higher one: {resume_command(row.id)}",
            )
        current = current_workflow(row.id)
        self.services.runs.update(
            row.id,
            status="running",
            failure_reason=None,
            finished_at=None,
            budget_usd=budget_usd,
            worker_pid=os.getpid(),
            worker_host=socket.gethostname(),
        )
        if agents is not None:
            self.services.run_agents[row.id] = agents
        self.services.open_run(row.id, budget_usd)
        fork_past_budget_stop(current, next_workflow(row.id, current), self.services.queue_name)

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
        self.services.end_run(row.id)


RUNS_POLL_S = 0.5
"""How often a worker's runs queue (recovered runs) is polled (seconds)."""


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
        if row.worker_pid and (row.worker_pid == os.getpid() or pid_alive(row.worker_pid)):
            continue
        orphans.append(row)
    return orphans


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
