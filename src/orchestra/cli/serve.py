"""CLI: ``orchestra gateway`` (the gateway alone) and ``orchestra serve`` (gateway + REST API).

Thin: parse options, hand them to :mod:`orchestra.server` through uvicorn's app factory so
that ``--workers N`` starts N identical processes. ``orchestra serve`` with one worker also
resumes runs whose process died (:mod:`orchestra.server.resuming`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestra.cli.output import error_console, fail
from orchestra.config import find_config
from orchestra.errors import OrchestraError

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="orchestra.yaml to use (default: the nearest)")
]
HostOption = Annotated[str | None, typer.Option("--host", help="address to listen on")]
PortOption = Annotated[int | None, typer.Option("--port", help="port to listen on")]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="database URL (default: $ORCHESTRA_DATABASE_URL or a SQLite file in the state folder)",
    ),
]
WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        max=64,
        help="worker processes; budgets and ledger are shared through the database, "
        "rate limits, circuit breakers and metrics through gateway.shared_state (Redis) "
        "when it is set, else per process",
    ),
]
ReusePortOption = Annotated[
    bool,
    typer.Option(
        "--reuse-port",
        help="listen with SO_REUSEPORT, so several `orchestra gateway` processes share the "
        "address (each started with --reuse-port; docs/gateway.md, Replicas)",
    ),
]


SERVER_FACTORY = "orchestra.server.app:app_from_environment"
RESUMING_FACTORY = "orchestra.cli.serve:app_resuming_runs"


def app_resuming_runs() -> Any:
    """uvicorn factory for ``orchestra serve``: the server app with this worker's engine
    (runs started through the API; orphaned runs resumed when ``resume_runs``)."""
    from orchestra.app import Orchestra
    from orchestra.server import ServeOptions, app_from_environment, hosting_engine

    options = ServeOptions.from_env()
    services = Orchestra.from_environment(
        config_path=Path(options.config_path) if options.config_path else None,
        database_url=options.database_url,
    )
    return hosting_engine(app_from_environment(), services, resume_orphans=options.resume_runs)


def _run(
    *,
    include_api: bool,
    config_path: Path | None,
    host: str | None,
    port: int | None,
    database_url: str | None,
    workers: int,
    reuse_port: bool = False,
) -> None:
    from orchestra.app import Orchestra
    from orchestra.server import OPTIONS_ENV, ServeOptions, run_server, uvicorn_options

    path = config_path or find_config()
    try:
        # Fail fast on a bad configuration, before any worker starts; and migrate once
        # here: N workers migrating a fresh database at once would race.
        with Orchestra.from_environment(config_path=path, database_url=database_url) as services:
            config = services.config
            services.migrate()
    except OrchestraError as exc:
        raise fail(exc) from exc
    # Several workers would each resume the same runs; only a single server process does.
    # Each worker still hosts an engine for the runs started through its API.
    resume_runs = include_api and workers == 1
    options = ServeOptions(
        include_api=include_api,
        config_path=str(path) if path else None,
        database_url=database_url,
        install_sighup=True,
        resume_runs=resume_runs,
    )
    os.environ[OPTIONS_ENV] = options.to_env()
    if include_api and not resume_runs:
        error_console().print(
            "note: with --workers > 1, interrupted runs are not resumed automatically; "
            "continue them with `orchestra resume RUN` or POST /api/v1/runs/RUN/resume",
            highlight=False,
        )
    try:
        run_server(
            RESUMING_FACTORY if include_api else SERVER_FACTORY,
            host=host or config.gateway.host,
            port=config.gateway.port if port is None else port,
            workers=workers,
            reuse_port=reuse_port,
            factory=True,
            log_level="info",
            lifespan="on",
            **uvicorn_options(),
        )
    except OrchestraError as exc:
        raise fail(exc) from exc


def gateway(
    config: ConfigOption = None,
    host: HostOption = None,
    port: PortOption = None,
    database_url: DatabaseOption = None,
    workers: WorkersOption = 1,
    reuse_port: ReusePortOption = False,
) -> None:
    """Run the model gateway alone (Anthropic and OpenAI endpoints, /metrics, /readyz)."""
    _run(
        include_api=False,
        config_path=config,
        host=host,
        port=port,
        database_url=database_url,
        workers=workers,
        reuse_port=reuse_port,
    )


def serve(
    config: ConfigOption = None,
    host: HostOption = None,
    port: PortOption = None,
    database_url: DatabaseOption = None,
    workers: WorkersOption = 1,
) -> None:
    """Run everything in one app: the gateway and the REST API (which starts runs).

    With one worker, runs whose process died (on this host) continue in the background.
    """
    _run(
        include_api=True,
        config_path=config,
        host=host,
        port=port,
        database_url=database_url,
        workers=workers,
    )


def register(app: typer.Typer) -> None:
    """Add ``gateway`` and ``serve`` to the root application."""
    app.command("gateway")(gateway)
    app.command("serve")(serve)
