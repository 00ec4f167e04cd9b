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
from typing import Any

from orchestra.app import Orchestra
from orchestra.engine import EngineRuntime, InProcessModelClient, orphaned_runs
from orchestra.engine.gateway_link import LocalRunKeys, RunAccounting, run_developer
from orchestra.errors import EngineError
from orchestra.gateway import GatewayApp

log = logging.getLogger("orchestra.engine")


@dataclass
class ServerEngine:
    """Resumes orphaned runs in a server process and stops them with it."""

    services: Orchestra
    """The server's services (configuration, database, state folder)."""
    resumed: list[str] = field(default_factory=list)
    """Ids of the runs resumed at startup."""
    _runtime: EngineRuntime | None = None
    _client: InProcessModelClient | None = None

    async def start(self, app: GatewayApp) -> list[str]:
        """Resume orphaned runs through ``app``'s gateway (a startup hook's work)."""
        loop = asyncio.get_running_loop()
        self.resumed = await asyncio.to_thread(self._start, app, loop)
        return self.resumed

    def _start(self, app: GatewayApp, loop: asyncio.AbstractEventLoop) -> list[str]:
        orphans = orphaned_runs(self.services.runs())
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
        # A resumed run keeps being charged to the developer who started it (its earlier
        # keys name them); the configured developer is only the fallback.
        try:
            developer, team = run_developer(self.services.config)
        except EngineError:
            developer, team = "", None  # every orphan has its earlier keys to go by
        client = InProcessModelClient(app, "", loop=loop)
        self._client = client
        runtime = self.services.engine(
            client,
            run_keys=LocalRunKeys(accounting, developer, team),
            cost_source=ledger,
            knowledge=self.services.knowledge(log.warning),
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


def hosting_engine(app: GatewayApp, services: Orchestra) -> EngineHostingApp:
    """``app`` with the engine resuming orphaned runs at startup (see the module doc)."""
    return EngineHostingApp(app, ServerEngine(services))
