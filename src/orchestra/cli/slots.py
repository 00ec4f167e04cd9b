"""CLI: orchestra slots — the organisation's agent slots: waiting and granted per unit."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestra.cli.output import console, fail, print_json
from orchestra.errors import OrchestraError


def _slots(as_json: bool) -> None:
    from orchestra.app import max_concurrent_agents, org_slots
    from orchestra.cli.engine import _services
    from orchestra.engine import shared_database

    with _services(existing_only=True) as services:
        shared = shared_database(services.database)
        slots = org_slots(services.config, "postgresql" if shared else "sqlite", "cli")
        # Every worker's requests (on SQLite: every process that used this database).
        table = dataclasses.replace(slots, shared=True).table(services.database)
        loads = table.loads()
    head: dict[str, Any] = {
        "topology": slots.topology,
        "allocation": slots.settings.allocation,
        "cap": max_concurrent_agents(services.config),
        "per_developer": slots.per_developer,
        "shared": shared,
    }
    if as_json:
        print_json({**head, "units": [dataclasses.asdict(u) for u in loads]})
        return
    out = console()
    out.print(
        f"topology {head['topology']}, allocation {head['allocation']}, cap {head['cap']}, "
        f"{head['per_developer']} per developer"
        + ("" if shared else " (SQLite: each process holds its own cap)")
    )
    grid = Table(title="agent slots: waiting and granted per unit")
    for column in ("level", "unit", "waiting", "granted", "quota"):
        grid.add_column(column)
    for u in loads:
        quota = "" if u.quota is None else str(u.quota)
        grid.add_row(u.level, u.unit, str(u.waiting), str(u.granted), quota)
    out.print(grid)


def register(app: typer.Typer) -> None:
    """Add ``slots``."""

    @app.command("slots")
    def slots_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Show the organisation's agent slots: the topology and, per developer, squad,
        tribe and region, the agent steps waiting and granted, with the quotas in force."""
        try:
            _slots(as_json)
        except OrchestraError as exc:
            raise fail(exc) from exc
