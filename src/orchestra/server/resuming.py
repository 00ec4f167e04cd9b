"""The engine inside ``orchestra serve``: runs started and resumed through the REST API,
and runs whose process died continue after a restart.

Each server process owns one engine runtime (DBOS allows one per process), launched on
first use: at startup when there are orphaned runs to resume, else on the first
``POST /api/v1/runs``. With ``orchestra serve --workers N`` **each worker owns the runs it
started or resumed**: the run's row records the worker's process (``worker_pid``,
``worker_host``) and the run's agent steps go to that worker's own DBOS queue. Any worker
answers for any run: status and reports are read from the database, a cancel goes through
DBOS's system database (the owning worker's workflow stops at its next step), and a resume
is refused while the owning worker lives and taken over by the answering worker once it is
gone (or, for a run stopped by its budget, by whichever worker is asked).

With ``engine.workers.distribute`` (PostgreSQL) the server runs no run itself: a run
started through the API is recorded and charged to the caller here and put on the shared
run queue for an ``orchestra worker`` (:mod:`orchestra.engine.run_queue`).

Model calls go into the server's own gateway in this process
(:class:`~orchestra.engine.model.InProcessModelClient` on the server's event loop), so
they are routed, budgeted and recorded exactly like calls from outside. A run started
through the API is charged to the caller (its run key is the caller's, with their team);
its agents are the caller's pool in the agent registry once the registry holds agents.
Completed steps and model calls of a resumed run are replayed from DBOS's records.

:func:`hosting_engine` wraps the server's app so that, at shutdown, the engine stops
before the gateway closes its upstream connections (a model call cut by the shutdown
would otherwise be recorded as a failed step instead of being retried on the next start).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra.app import Orchestra
from orchestra.engine import (
    ACTIVE_STATUSES,
    AgentSource,
    EngineRuntime,
    HttpModelClient,
    InProcessModelClient,
    new_run_id,
    orphaned_runs,
    require_run_start,
    run_pool,
    shared_queue,
    stopped_by_budget,
)
from orchestra.engine.gateway_link import LocalRunKeys, RunAccounting, run_developer
from orchestra.errors import EngineError
from orchestra.gateway import GatewayApp
from orchestra.server.api.context import ResumeRequest, RunRequest
from orchestra.store.tables.engine import RunRow

log = logging.getLogger("orchestra.engine")


class EngineNotReady(EngineError):
    """The server's engine cannot start runs (no database accounting, not started)."""

    status = 503


@dataclass
class ServerEngine:
    """The engine runtime of one server process: starts, resumes and hosts runs."""

    services: Orchestra
    """The server's services (configuration, database, state folder)."""
    resume_orphans: bool = True
    """Resume orphaned runs at startup (one server process only: see the module doc)."""
    resumed: list[str] = field(default_factory=list)
    """Ids of the runs resumed at startup."""
    _app: GatewayApp | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _runtime: EngineRuntime | None = None
    _client: InProcessModelClient | None = None
    _keys: LocalRunKeys | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watchers: list[threading.Thread] = field(default_factory=list)
    _queueing: tuple[EngineRuntime, LocalRunKeys] | None = None
    _closing: list[Any] = field(default_factory=list)

    async def start(self, app: GatewayApp) -> list[str]:
        """Remember ``app`` (whose gateway runs' model calls go into) and, with
        :attr:`resume_orphans`, resume orphaned runs (a startup hook's work)."""
        self._app = app
        self._loop = asyncio.get_running_loop()
        if self.resume_orphans:
            self.resumed = await asyncio.to_thread(self._resume_orphaned)
        return self.resumed

    def _accounting(self) -> Any | None:
        return getattr(self._app.gateway.accountant, "accounting", None) if self._app else None

    def _resume_orphaned(self) -> list[str]:
        orphans = orphaned_runs(self.services.runs())
        if not orphans:
            return []
        if self._accounting() is None:
            log.warning(
                "%d interrupted run(s) not resumed: this gateway has no database accounting; "
                "continue them with `orchestra resume RUN`",
                len(orphans),
            )
            return []
        runtime = self.runtime()
        resumed = []
        for row in orphans:
            runtime.resume(row.id, agents=self._pool_of_run(runtime, row.id))
            self._watch(runtime, row.id)
            resumed.append(row.id)
        if resumed:
            log.warning("resumed interrupted run(s) in the background: %s", ", ".join(resumed))
        return resumed

    def runtime(self) -> EngineRuntime:
        """This process's engine runtime, launched on first use."""
        with self._lock:
            if self._runtime is None:
                self._runtime = self._launch()
            return self._runtime

    def _launch(self) -> EngineRuntime:
        if self._app is None or self._loop is None:
            raise EngineNotReady(
                "the server's engine has not started", hint="retry once the server is up"
            )
        keys = self._run_keys()
        accounting = keys.accounting
        client = InProcessModelClient(self._app, "", loop=self._loop)
        runtime = self.services.engine(
            client,
            run_keys=keys,
            cost_source=RunAccounting(accounting),
            knowledge=self.services.knowledge(log.warning),
        )
        try:
            runtime.launch()
        except BaseException:
            client.close()
            raise
        self._client, self._keys = client, keys
        return runtime

    # -- runs through the API --------------------------------------------------------
    def start_run(self, request: RunRequest) -> str:
        """Start a run for ``request``'s caller (charged to them, with their pool); with
        ``engine.workers.distribute``, put it on the shared run queue for a worker."""
        queued = self.services.config.engine.workers.distribute
        if queued and not shared_queue(self.services.system_database_url):
            raise EngineNotReady(
                "engine.workers.distribute queues runs for workers, which needs PostgreSQL",
                hint="serve with database.url: postgresql://..., or unset "
                "engine.workers.distribute to run them in this server",
            )
        runtime, keys = self._submitter() if queued else (self.runtime(), self._keys)
        assert keys is not None
        run_id = new_run_id()
        agents = self._pool(request.developer)  # a queued run's is loaded by its worker
        options: dict[str, Any] = {
            "run_id": run_id,
            "budget_usd": request.budget_usd,
            "pipeline": request.pipeline,
            "principal": request.principal,
            "pool": request.developer if agents is not None else None,
        }
        keys.charge_to(run_id, request.developer, request.team)
        try:
            if queued:
                runtime.submit_run(request.task, request.repo, **options)
            else:
                runtime.start_run(request.task, request.repo, agents=agents, **options)
        finally:
            keys.owners.pop(run_id, None)  # its key names the owner from now on
        if not queued:
            self._watch(runtime, run_id)
        return run_id

    def _run_keys(self) -> LocalRunKeys:
        """Run keys in this server's accounting. A resumed run keeps being charged to the
        developer who started it (its earlier keys name them), a new one to its caller;
        the configured developer is a fallback."""
        accounting = self._accounting()
        if accounting is None:
            raise EngineNotReady(
                "this server has no database accounting, so it cannot charge runs",
                hint="serve with a database: orchestra serve --database-url URL",
            )
        try:
            developer, team = run_developer(self.services.config)
        except EngineError:
            developer, team = "", None
        return LocalRunKeys(accounting, developer, team)

    def _submitter(self) -> tuple[EngineRuntime, LocalRunKeys]:
        """A runtime that is not launched, recording runs and charging them in this
        server's accounting (it makes no model call)."""
        with self._lock:
            if self._queueing is None:
                keys = self._run_keys()
                client = HttpModelClient("http://127.0.0.1:9", "")  # never called
                self._queueing = (self.services.engine(client, run_keys=keys), keys)
                self._closing.append(client.close)
            return self._queueing

    def _watch(self, runtime: EngineRuntime, run_id: str) -> None:
        """Follow ``run_id``'s workflow until it ends, so that a workflow that fails with
        an error (an agent outside the pool) is recorded as a failed run — what waiting
        for it does in ``orchestra run``. Stops with the engine."""

        def follow() -> None:
            while not self._stopping.is_set():
                try:
                    runtime.wait(run_id, timeout_s=1.0)
                    return
                except EngineError:
                    if runtime.services.runs.get(run_id).status not in ACTIVE_STATUSES:
                        return
                    # else still running: wait again
                except Exception:  # the engine is stopping under us
                    return

        watcher = threading.Thread(target=follow, name=f"orchestra-run-{run_id}", daemon=True)
        self._watchers = [w for w in self._watchers if w.is_alive()] + [watcher]
        watcher.start()

    def resume(self, request: ResumeRequest) -> RunRow:
        """Continue a run: stopped by its budget (with a higher one), or whose worker is
        gone; checked like a start (``start_run`` with the caller and the new budget)."""
        runtime = self.runtime()
        services = runtime.services
        row = services.runs.get(request.run_id)
        if (
            row.status in ACTIVE_STATUSES
            and row.worker_host == socket.gethostname()
            and row.worker_pid == os.getpid()
        ):
            raise EngineError(
                f"run {row.id} is still being worked on by this server's worker",
                hint="wait for it, or cancel it",
            )
        if services.policy is not None:
            require_run_start(
                services.policy,
                services.config,
                request.principal,
                Path(row.repo_path),
                row.budget_usd if request.budget_usd is None else request.budget_usd,
                row.pipeline,
            )
        agents = self._pool_of_run(runtime, row.id)
        if stopped_by_budget(row):
            if request.budget_usd is None:
                raise EngineError(
                    f"run {row.id} was stopped by its budget",
                    hint='continue it with a higher budget: {"budget_usd": ...}',
                )
            runtime.continue_run(row.id, request.budget_usd, agents=agents)
        else:
            runtime.resume(row.id, budget_usd=request.budget_usd, agents=agents)
        self._watch(runtime, row.id)
        return services.runs.get(row.id)

    def _pool(self, developer: str) -> AgentSource | None:
        """``developer``'s pool once the agent registry holds agents (else ``None``: the
        built-in agents, as before the registry is seeded)."""
        from orchestra.registry import AgentRegistry

        registry = AgentRegistry(self.services.database, home=self.services.home)
        try:
            in_use = bool(registry.names())
        finally:
            registry.close()
        return self.services.pool_agents(developer, log.warning) if in_use else None

    def _pool_of_run(self, runtime: EngineRuntime, run_id: str) -> AgentSource | None:
        developer = run_pool(runtime.services.artifacts, run_id)
        return self.services.pool_agents(developer, log.warning) if developer else None

    async def stop(self) -> None:
        """Stop the engine (runs still going stay resumable) and release what it holds."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._stopping.set()
        for watcher in self._watchers:
            watcher.join(timeout=5)
        try:
            with self._lock:
                if self._runtime is not None:
                    self._runtime.shutdown()
        finally:
            self._runtime = None
            if self._client is not None:
                self._client.close()
                self._client = None
            for close in self._closing:
                close()
            self.services.close()


class EngineHostingApp:
    """An ASGI app: the server's app, with a :class:`ServerEngine` started and stopped
    around it (started after the gateway, stopped before it)."""

    def __init__(self, app: GatewayApp, engine: ServerEngine) -> None:
        self.app = app
        self.engine = engine

        async def start_engine() -> None:
            await engine.start(app)

        app.startup_hooks.append(start_engine)
        api = getattr(getattr(app.fallback, "state", None), "api", None)
        if api is not None:
            api.engine = engine  # the REST API starts and resumes runs here

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve ``scope``; on lifespan shutdown, stop the engine before the gateway."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def receive_stopping_engine_first() -> Any:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                try:
                    await self.engine.stop()
                except Exception:  # the gateway must still shut down cleanly
                    log.exception("stopping the engine failed")
            return message

        await self.app(scope, receive_stopping_engine_first, send)


def hosting_engine(
    app: GatewayApp, services: Orchestra, *, resume_orphans: bool = True
) -> EngineHostingApp:
    """``app`` with this process's engine: runs through the API, and with
    ``resume_orphans`` orphaned runs resumed at startup (see the module doc)."""
    return EngineHostingApp(app, ServerEngine(services, resume_orphans=resume_orphans))
