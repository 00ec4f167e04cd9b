"""CLI: orchestra org ... (organisation tree and stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.tree import Tree

from orchestra.accounting import AuditLog, sync_org_audited
from orchestra.cli.acting import acting_as
from orchestra.cli.output import console, fail, print_json
from orchestra.config import OrchestraConfig, default_database_url, load_config
from orchestra.config.paths import unborn_database
from orchestra.errors import OrchestraError
from orchestra.org import (
    OrgInvalid,
    OrgTree,
    OrgUnit,
    assess_stage,
    build_org_tree,
    load_org,
)
from orchestra.store import open_database

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="orchestra.yaml to use (default: the nearest one)."),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL (default: $ORCHESTRA_DATABASE_URL or SQLite under .orchestra/).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(exc: OrchestraError) -> typer.Exit:
    """Print ``exc`` (every problem of an organisation section) and exit 2."""
    if isinstance(exc, OrgInvalid):
        note = "nothing was written; `orchestra config check` shows file:line locations"
        return fail(exc, note=note)
    return fail(exc)


def _config(path: Path | None) -> OrchestraConfig:
    return load_config(path)


def sync(
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Store the organisation from orchestra.yaml: add, update and remove, in one step."""
    try:
        config = _config(config_path)
        tree = build_org_tree(config.organisation)
        actor = acting_as(config, "manage_org")
        db = open_database(database or default_database_url())
        try:
            result = sync_org_audited(AuditLog(db), tree, actor=actor)
        finally:
            db.dispose()
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if json_out:
        print_json(result.__dict__)
        return
    out = console()
    for verb, items in (
        ("added", result.added),
        ("updated", result.updated),
        ("removed", result.removed),
    ):
        for item in items:
            out.print(f"{verb} {item}", highlight=False, markup=False)
    out.print(
        f"organisation {tree.name!r} synced: {len(result.added)} added, "
        f"{len(result.updated)} updated, {len(result.removed)} removed",
        highlight=False,
        soft_wrap=True,
    )


def _add_units(node: Tree, tree: OrgTree, parent: str | None) -> None:
    for dev in tree.members(parent):
        node.add(f"{dev.name} [dim]({dev.role})[/]")
    for unit in tree.children(parent):
        _add_units(node.add(_unit_label(unit)), tree, unit.name)


def _unit_label(unit: OrgUnit) -> str:
    label = f"[bold]{unit.name}[/] [dim]{unit.kind}[/]"
    return f"{label} — {escape(unit.description)}" if unit.description else label


def show(
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Print the stored organisation tree (run `orchestra org sync` first)."""
    try:
        url = database or default_database_url()
        tree = None
        if not unborn_database(url):  # nothing stored: say so, and create nothing
            db = open_database(url)
            try:
                tree = load_org(db)
            finally:
                db.dispose()
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if tree is None:
        raise fail(
            "no organisation stored yet",
            "run `orchestra org sync` to store the one in orchestra.yaml",
        )
    if json_out:
        print_json(tree.to_dict())
        return
    root = Tree(f"[bold]{tree.name}[/] [dim]organisation, {tree.headcount} developer(s)[/]")
    _add_units(root, tree, None)
    for guild in tree.guilds:
        members = ", ".join(d.name for d in tree.guild_members(guild.name)) or "no members"
        root.add(f"[bold]{guild.name}[/] [dim]guild[/]: {escape(members)}")
    console().print(root)


def stage(
    config_path: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Say which growth stage the organisation is in, and what the next stage changes."""
    try:
        assessment = assess_stage(_config(config_path))
    except OrchestraError as exc:
        raise _fail(exc) from exc
    current = assessment.stage
    if json_out:
        print_json(
            {
                "stage": current.__dict__,
                "headcount": assessment.headcount,
                "by_headcount": assessment.by_headcount.name,
                "pinned": assessment.pinned,
                "agent_allocation": current.agent_allocation(assessment.headcount),
                "warnings": list(assessment.warnings),
                "next": assessment.next.__dict__ if assessment.next else None,
                "changes_at_next": list(assessment.changes_at_next),
            }
        )
        return
    out = console()
    how = "pinned in orchestra.yaml" if assessment.pinned else "from the headcount"
    out.print(
        f"stage: [bold]{current.name}[/] ({how}; {assessment.headcount} developer(s))",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"topology: {current.topology} — {current.description}", highlight=False)
    out.print(
        f"agents: {current.shared_agents} shared + {current.agents_per_developer} per developer "
        f"= {current.agent_allocation(assessment.headcount)} now "
        f"(cap {current.max_concurrent_agents} concurrent)",
        highlight=False,
        soft_wrap=True,
    )
    for warning in assessment.warnings:
        out.print(f"[yellow]warning[/] {escape(warning)}", highlight=False)
    if assessment.next is None:
        out.print("this is the last stage")
    else:
        out.print(f"next stage: [bold]{assessment.next.name}[/]", highlight=False)
        for change in assessment.changes_at_next:
            out.print(f"  - {change}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    org = typer.Typer(help="The organisation: sync it from orchestra.yaml, show it, its stage.")
    org.command("sync")(sync)
    org.command("show")(show)
    org.command("stage")(stage)
    app.add_typer(org, name="org", no_args_is_help=True)
