"""Composing the ASGI application that ``orchestra gateway`` and ``orchestra serve`` run.

The REST API (``/api/v1``, :mod:`orchestra.server.api`) and the dashboard
(``/dashboard``, :mod:`orchestra.server.dashboard`) are served next to the gateway when
``include_api``; other parts add routes through ``build_app(extra_routes=[...])`` (or
endpoints through the API's domain modules) and work to do at startup (e.g. resuming runs)
through ``startup_hooks``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from orchestra.app import OpenedGateway, Orchestra
from orchestra.config import load_config
from orchestra.config.schema import OrchestraConfig
from orchestra.gateway import Accountant, Gateway, GatewayApp, GatewayDeps, StartupHook
from orchestra.server.api import ApiContext, PolicyAuthorizer, api_routes, not_found
from orchestra.server.dashboard import dashboard_routes, metrics_routes

log = logging.getLogger("orchestra.server")

OPTIONS_ENV = "ORCHESTRA_SERVE_OPTIONS"
"""How ``orchestra serve --workers N`` passes its options to each worker process."""


@dataclass
class ServeOptions:
    """What to serve: the gateway alone or with the REST API, from which config and DB."""

    include_api: bool = True
    config_path: str | None = None
    database_url: str | None = None
    install_sighup: bool = True
    """Reload the configuration on SIGHUP (main thread only)."""
    resume_runs: bool = True
    """Resume orphaned runs at startup (``orchestra serve`` with one worker only)."""

    def to_env(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls) -> ServeOptions:
        raw = os.environ.get(OPTIONS_ENV)
        return cls(**json.loads(raw)) if raw else cls()


def open_gateway(
    config: OrchestraConfig, database_url: str | None = None, deps: GatewayDeps | None = None
) -> OpenedGateway:
    """A :class:`Gateway` over the database at ``database_url`` (default: the state folder),
    built by the composition root (:class:`orchestra.app.Orchestra`)."""
    return Orchestra.from_environment(config=config, database_url=database_url).open_gateway(deps)


def build_app(
    config: OrchestraConfig,
    *,
    database_url: str | None = None,
    accountant: Accountant | None = None,
    deps: GatewayDeps | None = None,
    include_api: bool = True,
    extra_routes: Sequence[BaseRoute] = (),
    startup_hooks: Sequence[StartupHook] = (),
    config_path: Path | None = None,
    install_sighup: bool = False,
) -> GatewayApp:
    """The combined application. ``accountant`` replaces the database-backed one (tests).

    ``extra_routes`` are Starlette routes served next to the gateway (the REST API);
    ``startup_hooks`` run after the ledger is reconciled, in order.
    """
    close_hooks: list[StartupHook] = []
    if config_path is not None:
        deps = deps or GatewayDeps()
        if deps.policy_base_dir is None:
            deps = replace(deps, policy_base_dir=config_path.parent)
    if accountant is None:
        opened = open_gateway(config, database_url, deps)
        gateway = opened.gateway
        close_hooks = opened.close_hooks
    else:
        gateway = Gateway(config, accountant, deps)
    fallback = None
    api: ApiContext | None = None
    if include_api:
        api = ApiContext(
            config,
            services=lambda: Orchestra.from_environment(config=config, database_url=database_url),
            base_dir=config_path.parent if config_path is not None else None,
        )
        accounting = getattr(gateway.accountant, "accounting", None)
        api.authorizer = PolicyAuthorizer(
            api.current_config_of,
            audit=accounting.audit if accounting is not None else None,
            base_dir=config_path.parent if config_path is not None else None,
        )
        routes: list[BaseRoute] = [
            *api_routes(api),
            dashboard_routes(api),
            metrics_routes(api),
            *extra_routes,
        ]
        fallback = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
        fallback.state.api = api

    def loader() -> OrchestraConfig:
        return load_config(config_path)

    app = GatewayApp(
        gateway,
        fallback=fallback,
        config_loader=loader,
        startup_hooks=list(startup_hooks),
        shutdown_hooks=close_hooks,
    )
    if api is not None:
        api.app = app

        async def close_api() -> None:
            await api.aclose()

        app.shutdown_hooks.append(close_api)
    if install_sighup:
        app.startup_hooks.insert(0, _sighup_hook(app))
    return app


def _audit_signal_reload(app: GatewayApp) -> None:
    """Record a SIGHUP-triggered reload: the actor is the signal (no one authenticated)."""
    accounting = getattr(app.gateway.accountant, "accounting", None)
    if accounting is None:
        log.warning("configuration reloaded on SIGHUP; no audit log to record it in")
        return
    accounting.audit.append(
        f"signal:SIGHUP(pid {os.getpid()})",
        "config.reload",
        "config",
        {"trigger": "SIGHUP", "loaded_at": app.gateway.snapshot.loaded_at.isoformat()},
    )


def _sighup_hook(app: GatewayApp) -> StartupHook:
    tasks: set[asyncio.Task[None]] = set()

    async def install() -> None:
        loop = asyncio.get_running_loop()

        async def reload() -> None:
            try:
                config = await asyncio.to_thread(app.config_loader)  # type: ignore[arg-type]
                await asyncio.to_thread(app.gateway.reload, config)
                await asyncio.to_thread(_audit_signal_reload, app)
            except Exception:
                log.exception("configuration reload on SIGHUP failed; keeping the old one")

        def on_hup() -> None:
            task = loop.create_task(reload())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        try:
            loop.add_signal_handler(signal.SIGHUP, on_hup)
        except (NotImplementedError, RuntimeError, ValueError):
            log.warning("SIGHUP reload is not available here; use POST /v1/orchestra/admin/reload")

    return install


GC_THRESHOLDS = (20_000, 50, 50)
"""Cyclic-GC thresholds of a server process (Python's default is 700, 10, 10).

A request allocates a few hundred short-lived objects that reference counting frees; the
default first-generation threshold ran a collection every couple of requests, which showed
as several percent of the gateway's CPU. Measured with the gateway benchmark's in-memory
diagnostic: about 5-10 % less CPU per answer at these values."""


def tune_gc() -> None:
    """For a long-running server process, once started: move what start-up built (modules,
    configuration) out of the collector's way and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _tune_gc_hook() -> None:
    tune_gc()


def _insight_routes(
    config: OrchestraConfig, options: ServeOptions
) -> tuple[list[BaseRoute], StartupHook]:
    """Insight's routes: the KPIs, maturity, plans, ROI and surveys (for whoever the API
    authenticates: session, OpenID Connect token or gateway key), and the webhooks when a
    webhook secret is configured; and what closes what they opened (lazily)."""
    from orchestra.accounting import SecretBox, SecretStore
    from orchestra.server.insight import insight_routes, kpi_routes
    from orchestra.server.insight_more import insight_more_routes

    root = Orchestra.from_environment(config=config, database_url=options.database_url)
    routes = kpi_routes(config, lambda: root.database)
    routes += insight_more_routes(config, lambda: root.database)
    if config.insight.github_secret is not None or config.insight.gitlab_secret is not None:
        secrets = SecretStore(SecretBox.from_home(root.home))
        routes += insight_routes(config, root.database, secrets.get)

    async def close() -> None:
        root.close()

    return routes, close


def app_from_environment() -> GatewayApp:
    """uvicorn factory (``--factory``) for worker processes: options from the environment."""
    options = ServeOptions.from_env()
    path = Path(options.config_path) if options.config_path else None
    config = load_config(path)
    routes, close = _insight_routes(config, options) if options.include_api else ([], None)
    app = build_app(
        config,
        database_url=options.database_url,
        include_api=options.include_api,
        extra_routes=routes,
        config_path=path,
        install_sighup=options.install_sighup,
    )
    app.startup_hooks.append(_tune_gc_hook)  # this process is a server: nothing else runs here
    if close is not None:
        app.shutdown_hooks.append(close)
    return app
