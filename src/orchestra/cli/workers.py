"""CLI: orchestra worker (an engine worker that drains on SIGTERM) and orchestra workers."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestra.cli.output import console, fail, print_json
from orchestra.errors import EngineError, OrchestraError


def _worker_dict(info: Any) -> dict[str, Any]:
    return {
        "executor_id": info.executor_id,
        "host": info.host,
        "pid": info.pid,
        "state": info.state,
        "heartbeat_age_s": round(info.heartbeat_age_s, 1),
        "recovered_by": info.recovered_by,
        "recovered_workflows": info.recovered_workflows,
    }


def _list_workers(as_json: bool) -> None:
    from orchestra.cli.engine import _services
    from orchestra.engine import WorkerRegistry, shared_database

    with _services(existing_only=True) as services:
        if not shared_database(services.database):
            console().print(
                "SQLite: the engine runs in one process; workers, leases and recovery "
                "need PostgreSQL (database.url: postgresql://...)"
            )
            return
        timeout = services.config.engine.workers.timeout_s
        infos = WorkerRegistry(services.database, timeout).list()
    if as_json:
        print_json([_worker_dict(i) for i in infos])
        return
    table = Table(title=f"workers (dead after {timeout:g}s without a heartbeat)")
    for column in ("executor id", "host", "pid", "state", "heartbeat", "recovered by"):
        table.add_column(column)
    for i in infos:
        recovered = i.recovered_by or ""
        if recovered:
            recovered += f" ({i.recovered_workflows} workflows)"
        table.add_row(
            i.executor_id,
            i.host,
            str(i.pid),
            i.state,
            f"{i.heartbeat_age_s:.1f}s ago",
            recovered,
        )
    console().print(table)


def _serve_worker(gateway_url: str | None) -> None:
    from orchestra.cli.engine import _runtime
    from orchestra.config import default_database_url

    if not default_database_url().startswith(("postgresql", "postgres")):
        raise EngineError(
            "`orchestra worker` needs PostgreSQL: on SQLite the engine is one process",
            hint="set ORCHESTRA_DATABASE_URL=postgresql://... (see docs/scheduling.md)",
        )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with _runtime(gateway_url, take_queued_runs=True) as (runtime, _gateway):
        fleet = runtime.fleet
        if fleet is None:  # the application database is PostgreSQL: so is DBOS's
            raise EngineError("this engine has no worker lease", hint="see docs/scheduling.md")
        console().print(
            f"worker {runtime.executor_id} up: taking queued runs and recovering dead "
            "workers' runs; SIGTERM drains it"
        )
        lease = fleet.lease
        while not stop.wait(0.5):
            if lease is not None and lease.lost.is_set():
                break
        idle = runtime.drain()
    console().print(
        f"worker {runtime.executor_id} drained"
        + ("" if idle else " (steps still running at the drain timeout are repeated elsewhere)")
    )


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``workers``."""

    @app.command("workers")
    def workers_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """List the engine workers on the shared database: state, heartbeat, recoveries."""
        try:
            _list_workers(as_json)
        except OrchestraError as exc:
            raise fail(exc) from exc

    @app.command("worker")
    def worker_cmd(
        gateway_url: Annotated[
            str | None, typer.Option("--gateway-url", help="Use this shared gateway.")
        ] = None,
    ) -> None:
        """Run an engine worker (PostgreSQL) until SIGTERM: it takes runs from the shared
        run queue (engine.workers.max_active at once), heartbeats, recovers the runs of
        workers whose heartbeat stopped, and on SIGTERM drains (finishes its steps in
        progress, takes nothing new, leaves the rest to the other workers)."""
        try:
            _serve_worker(gateway_url)
        except OrchestraError as exc:
            raise fail(exc) from exc
