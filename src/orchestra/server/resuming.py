"""The engine inside ``orchestra serve``: runs whose process died continue after a restart.

At startup (after the gateway has reconciled its ledger) :class:`ServerEngine` looks for
active runs whose worker process on this host is gone. If there are any, it launches an
engine runtime on the server's database and state folder and resumes them in the
background; their model calls go into the server's own gateway in this process
(:class:`~orchestra.engine.model.InProcessModelClient` on the server's event loop), so
they are routed, budgeted and recorded exactly like calls from outside. Completed steps
and model calls are replayed from DBOS's records, not repeated.

:func:`hosting_engine` wraps the server's app so that, at shutdown, the engine stops
before the gateway closes its upstream connections (a model call cut by the shutdown
would otherwise be recorded as a failed step instead of being retried on the next start).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra.config.schema import OrchestraConfig
from orchestra.engine import EngineRuntime, InProcessModelClient, RunStore, orphaned_runs
from orchestra.engine.factory import build_runtime, open_knowledge
from orchestra.engine.gateway_link import RunAccounting
from orchestra.gateway import GatewayApp
from orchestra.pipelines import builtin_pipelines
from orchestra.store import Database, open_database

log = logging.getLogger("orchestra.engine")


@dataclass
class ServerEngine:
    """Resumes orphaned runs in a server process and stops them with it."""

    config: OrchestraConfig
    database_url: str
    home: Path
    resumed: list[str] = field(default_factory=list)
    """Ids of the runs resumed at startup."""
    _database: Database | None = None
    _runtime: EngineRuntime | None = None
    _client: InProcessModelClient | None = None

    async def start(self, app: GatewayApp) -> list[str]:
        """Resume orphaned runs through ``app``'s gateway (a startup hook's work)."""
        loop = asyncio.get_running_loop()
        self.resumed = await asyncio.to_thread(self._start, app, loop)
        return self.resumed

    def _start(self, app: GatewayApp, loop: asyncio.AbstractEventLoop) -> list[str]:
        database = open_database(self.database_url)
        self._database = database
        orphans = orphaned_runs(RunStore(database))
        if not orphans:
            return []
        accounting = getattr(app.gateway.accountant, "accounting", None)
        if accounting is None:
            log.warning(
                "%d interrupted run(s) not resumed: this gateway has no database accounting; "
                "continue them with `orchestra resume RUN`",
                len(orphans),
            )
            return []
        ledger = RunAccounting(accounting)
        client = InProcessModelClient(app, ledger.create_engine_key(), loop=loop)
        self._client = client
        runtime = build_runtime(
            config=self.config,
            database=database,
            database_url=self.database_url,
            home=self.home,
            client=client,
            pipelines=builtin_pipelines(),
            budget_setup=ledger.define_run_budget,
            cost_source=ledger,
            knowledge=open_knowledge(None, log.warning),
        )
        runtime.launch()
        self._runtime = runtime
        resumed = runtime.resume_orphaned()
        if resumed:
            log.warning("resumed interrupted run(s) in the background: %s", ", ".join(resumed))
        return resumed

    async def stop(self) -> None:
        """Stop the engine (runs still going stay resumable) and release what it holds."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        try:
            if self._runtime is not None:
                self._runtime.shutdown()
        finally:
            self._runtime = None
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._database is not None:
                self._database.dispose()
                self._database = None


class EngineHostingApp:
    """An ASGI app: the server's app, with a :class:`ServerEngine` started and stopped
    around it (started after the gateway, stopped before it)."""

    def __init__(self, app: GatewayApp, engine: ServerEngine) -> None:
        self.app = app
        self.engine = engine

        async def start_engine() -> None:
            await engine.start(app)

        app.startup_hooks.append(start_engine)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
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
    app: GatewayApp, config: OrchestraConfig, database_url: str, home: Path
) -> EngineHostingApp:
    """``app`` with the engine resuming orphaned runs at startup (see the module doc)."""
    return EngineHostingApp(app, ServerEngine(config, database_url, home))
