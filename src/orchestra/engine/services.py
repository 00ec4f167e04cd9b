"""What workflows reach for while they run: the services bound to the launched runtime.

DBOS keeps its registry of workflows and its instance at module level; that is the one
process-wide binding Orchestra accepts. :class:`~orchestra.engine.runtime.EngineRuntime`
binds its :class:`EngineServices` here at ``launch()`` and releases them at ``shutdown()``;
workflow code (the engine's agent workflow and every pipeline) reaches them through
:func:`services`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestra.accounting.keys import KeyHolding
from orchestra.config import OrchestraConfig
from orchestra.engine.agents import AgentSource
from orchestra.engine.artifacts import ArtifactStore
from orchestra.engine.model import ModelClient
from orchestra.engine.retries import ModelRetry
from orchestra.engine.runs import RunStore
from orchestra.engine.slot_table import SlotTable
from orchestra.engine.slots import OrgSlots
from orchestra.errors import EngineError
from orchestra.policy import PolicyEngine
from orchestra.repository import TestEnvironment, command_limits, resolve_environment
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.tools import CommandLimits, Toolbox, Workspace, WritePolicy

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


class RunKeys(Protocol):
    """Where each run gets its own gateway key: charged to the developer who started it
    (and their team), bound to the run's budget, revoked when the run ends."""

    def open(self, run_id: str, budget_usd: float | None, holding: KeyHolding | None = None) -> str:
        """A new key for ``run_id`` whose calls the gateway charges to the run, with the
        run's budget set to ``budget_usd`` (``None``: no run budget, an earlier one stays);
        returns its secret. Earlier keys of the run are revoked; for a worker (``holding``)
        only those it fences off."""
        ...

    def end(self, run_id: str) -> None:
        """Revoke the keys of ``run_id`` (it ended, or was cancelled)."""
        ...


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
    run_keys: RunKeys | None = None
    """Where runs get their keys and budgets (``None``: the client's own key is used)."""
    knowledge: Any | None = None
    """An ``orchestra.knowledge.KnowledgeStore`` when available."""
    cost_source: Any | None = None
    """Something with ``costs_for_run(run_id) -> dict[step, float]`` (the gateway ledger)."""
    pools: Callable[[str], AgentSource] | None = None
    """A developer's agent pool, for runs taken from the shared run queue that were
    submitted with one (``None``: such runs use :attr:`agents`)."""
    held_runs: set[str] = field(default_factory=set)
    """Runs this process holds a key for (:meth:`open_run`) until they end."""
    children: ChildSignals = field(default_factory=ChildSignals)
    """Notices that agent child workflows returned (see :func:`run_agents`)."""
    policy: PolicyEngine | None = None
    """The Cedar policies runs are started under (see :mod:`orchestra.engine.run_policy`)."""
    sleep: Callable[[float], None] = time.sleep
    """How agents wait before retrying a model call (tests inject one that does not)."""
    org_slots: OrgSlots | None = None
    """Organisation-wide agent slots: limits, topology and quotas (``None``: this process's
    agent queue alone bounds its agents)."""
    run_agents: dict[str, AgentSource] = field(default_factory=dict)
    """Agents of particular runs (the pool of the developer who started a run through the
    server), instead of :attr:`agents`."""
    holder: str | None = None
    """This worker's executor id when it shares the database with other workers: each
    worker holds its own key of a run it works on (``None``: one process, one key)."""

    _slot_table: SlotTable | None = field(default=None, init=False, repr=False)

    def slot_table(self) -> SlotTable | None:
        """Where agent steps ask for organisation-wide slots (``None``: no slots)."""
        if self.org_slots is not None and self._slot_table is None:
            self._slot_table = self.org_slots.table(self.database)
        return self._slot_table

    def agents_for(self, run_id: str) -> AgentSource:
        """The agents ``run_id`` may use: its own (its starter's pool), else the engine's."""
        return self.run_agents.get(run_id, self.agents)

    def model_retry(self) -> ModelRetry:
        """When agents retry a model call refused for a while (``engine.model_retry``)."""
        settings = self.config.engine.model_retry
        return ModelRetry(
            max_attempts=settings.max_attempts,
            base_delay_s=settings.base_delay_s,
            max_wait_s=settings.max_wait_s,
            max_total_wait_s=settings.max_total_wait_s,
            sleep=self.sleep,
        )

    def open_run(self, run_id: str, budget_usd: float | None, fence: tuple[str, ...] = ()) -> None:
        """Give ``run_id`` its own key (and budget) for its model calls in this process;
        ``fence``: the dead workers whose part of the run this one recovers (their keys
        are revoked; another live worker's is not)."""
        self.held_runs.add(run_id)
        if self.run_keys is None:
            return
        holding = None if self.holder is None else KeyHolding(self.holder, fence)
        secret = self.run_keys.open(run_id, budget_usd, holding)
        use_key = getattr(self.client, "use_key", None)
        if use_key is not None:
            use_key(run_id, secret)

    def end_run(self, run_id: str) -> None:
        """Revoke ``run_id``'s key: it made its last model call."""
        self.run_agents.pop(run_id, None)
        self.held_runs.discard(run_id)
        if self.run_keys is None:
            return
        drop_key = getattr(self.client, "drop_key", None)
        if drop_key is not None:
            drop_key(run_id)
        self.run_keys.end(run_id)

    def limits(self) -> CommandLimits:
        """The sandbox limits of every command a run starts."""
        engine = self.config.engine
        return CommandLimits(
            timeout_s=engine.command_timeout_s,
            memory_mb=engine.command_memory_mb,
            isolate_network=engine.isolate_network,
        )

    def test_environment(self, repo_path: str) -> TestEnvironment:
        """How the repository's tests run: its own environment, settings first
        (see ``docs/repositories.md``)."""
        return resolve_environment(Path(repo_path), self.config)

    def test_command(self, repo_path: str) -> list[str]:
        """The repository's test command (configured, else detected)."""
        return list(self.test_environment(repo_path).command)

    def allowed_commands(self, repo_path: str) -> list[str]:
        """What agents may start with ``run_command`` in that repository."""
        override = self.config.engine.repositories.get(Path(repo_path).name)
        if override and override.allowed_commands is not None:
            return list(override.allowed_commands)
        return list(self.config.engine.allowed_commands)

    def workspace(self, run: RunRow) -> Workspace:
        """The git worktree of ``run`` (once its workflow has created it)."""
        if not run.worktree_path or not run.branch or not run.base_commit:
            raise EngineError(f"run {run.id} has no workspace yet")
        return Workspace(Path(run.worktree_path), run.branch, run.base_commit)

    def toolbox(self, run: RunRow, policy: WritePolicy) -> Toolbox:
        """The tools of ``run``'s agents and gates, writing under ``policy``."""
        search = store = None
        if self.knowledge is not None:
            search, store = _knowledge_tools(self.knowledge, run)
        workspace = self.workspace(run)
        environment = self.test_environment(run.repo_path)
        return Toolbox(
            workspace=workspace,
            home=self.artifacts.run_dir(run.id) / "home",
            test_command=list(environment.command),
            test_env=environment.sandbox_env(workspace.root),
            pass_env=environment.pass_env,
            allowed_commands=self.allowed_commands(run.repo_path),
            limits=command_limits(environment, self.limits()),
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


def bind(bound: EngineServices) -> None:
    """Bind ``bound`` for workflows in this process (one launched runtime at a time)."""
    if _BINDING.services is not None:
        raise EngineError(
            "an engine runtime is already launched in this process",
            hint="call shutdown() on it first",
        )
    _BINDING.services = bound


def unbind() -> None:
    """Release the binding (the runtime stopped, or its launch failed)."""
    _BINDING.services = None
