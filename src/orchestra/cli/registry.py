"""CLI: ``orchestra registry ...`` (the agent registry; thin over :mod:`orchestra.registry`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestra.cli.acting import acting_identity
from orchestra.cli.output import console, error_console, fail, print_json
from orchestra.config import default_database_url, find_config, load_config
from orchestra.errors import OrchestraError
from orchestra.org import OrgTree, load_org
from orchestra.policy import PolicyEngine, Principal
from orchestra.registry import (
    AgentRegistry,
    AgentVersion,
    UnitPools,
    UnknownUnit,
    principal_for,
    search,
    seed_builtins,
)
from orchestra.store import open_database

registry_app = typer.Typer(
    name="registry",
    help="The agent registry: versions, review, provenance, search and unit pools.",
    no_args_is_help=True,
)
pool_app = typer.Typer(name="pool", help="Which agents a unit may use.", no_args_is_help=True)
registry_app.add_typer(pool_app, name="pool")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL (default: $ORCHESTRA_DATABASE_URL or SQLite under .orchestra/).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="The developer acting (default: $ORCHESTRA_DEVELOPER, else "
        "identity.cli_developer); their role in the stored organisation decides what they may do.",
    ),
]
NoteOption = Annotated[str, typer.Option("--note", help="Why (kept with the version).")]


@contextmanager
def _registry(database: str | None) -> Iterator[AgentRegistry]:
    """The registry over ``database``; errors become exits."""
    try:
        db = open_database(database or default_database_url())
    except OrchestraError as exc:
        raise fail(exc) from exc
    registry = AgentRegistry(db)
    try:
        yield registry
    except OrchestraError as exc:
        raise fail(exc) from exc
    finally:
        registry.close()
        db.dispose()


def _tree(registry: AgentRegistry) -> OrgTree:
    tree = load_org(registry.database)
    if tree is None:
        raise UnknownUnit(
            "no organisation is stored in this database",
            hint="describe it in orchestra.yaml and run `orchestra org sync`",
        )
    return tree


def _principal(registry: AgentRegistry, actor: str | None) -> Principal:
    """Who acts (:func:`orchestra.cli.acting.acting_identity`: ``--as``, else the CLI's
    configured developer), as the stored organisation knows them; the registry then decides
    with the policies of the nearest orchestra.yaml (``$ORCHESTRA_CONFIG``), loaded only by
    the commands that change something."""
    path = find_config()
    config = load_config(path)
    registry.policy = PolicyEngine.from_config(
        config, base_dir=path.parent if path else None, audit=registry.audit
    )
    name = acting_identity(config, actor).principal.id
    return principal_for(_tree(registry), name)


def _version_line(v: AgentVersion) -> str:
    review = f", reviewed by {v.reviewed_by}" if v.reviewed_by else ""
    note = f" — {v.note}" if v.note else ""
    return (
        f"{v.label} {v.state}: published by {v.publisher} "
        f"{v.published_at:%Y-%m-%d %H:%M}{review}{note}"
    )


@registry_app.command("seed")
def seed_command(database: DatabaseOption = None, json_out: JsonOption = False) -> None:
    """Publish the built-in agents as the official publisher (idempotent)."""
    with _registry(database) as registry:
        result = seed_builtins(registry)
    if json_out:
        print_json(result.__dict__)
        return
    console().print(
        f"seeded: {len(result.published)} published, {result.unchanged} unchanged", markup=False
    )


@registry_app.command("list")
def list_command(
    database: DatabaseOption = None,
    all_versions: Annotated[
        bool, typer.Option("--all", help="Include agents with no servable version.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """List the agents and the version each serves."""
    with _registry(database) as registry:
        summaries = registry.summaries(served_only=not all_versions)
    if json_out:
        print_json([s.to_dict() for s in summaries])
        return
    table = Table("agent", "served", "latest", "category", "publisher")
    for s in summaries:
        served = (
            f"v{s.served.version}" + (" (deprecated)" if s.warning else "") if s.served else "-"
        )
        latest = f"v{s.latest.version} {s.latest.state}"
        table.add_row(s.agent, served, latest, s.latest.category, s.latest.publisher)
    out = console()
    out.print(table)
    out.print(f"{len(summaries)} agents", markup=False)


@registry_app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="Words to find in name, tags, description.")] = "",
    category: Annotated[str | None, typer.Option("--category")] = None,
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Search the served agents by name, description, tags and category."""
    with _registry(database) as registry:
        hits = search(registry.summaries(served_only=True), query, category=category, tag=tag)
    if json_out:
        print_json([h.to_dict() for h in hits])
        return
    out = console()
    for hit in hits:
        version = hit.summary.served or hit.summary.latest
        out.print(f"{version.label}  {version.description}", markup=False)
    out.print(f"{len(hits)} found", markup=False)


@registry_app.command("show")
def show_command(
    agent: str,
    version: Annotated[str | None, typer.Option("--version", help="One version (3 or v3).")] = None,
    definition: Annotated[
        bool, typer.Option("--definition", help="Print the definition itself.")
    ] = False,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """An agent's versions and their provenance (or one version's definition)."""
    with _registry(database) as registry:
        versions = [registry.version(agent, version)] if version else registry.versions(agent)
        summary = registry.summary(agent)
    if json_out:
        print_json(
            {
                "agent": agent,
                "served": summary.served.version if summary.served else None,
                "warning": summary.warning,
                "versions": [v.to_dict(with_definition=definition) for v in versions],
            }
        )
        return
    out = console()
    for v in versions:
        out.print(_version_line(v), markup=False)
    if summary.warning:
        error_console().print(f"warning: {summary.warning}", markup=False)
    if definition:
        out.print(versions[-1].definition, markup=False, highlight=False)


@registry_app.command("publish")
def publish_command(
    file: Annotated[Path, typer.Argument(help="The agent file (Markdown + front matter).")],
    actor: ActorOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Publish a new version of an agent; it waits for a lead's or admin's approval."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}", "give the path of a UTF-8 agent file") from exc
    with _registry(database) as registry:
        version = registry.publish(_principal(registry, actor), text, source=str(file))
    if json_out:
        print_json(version.to_dict())
        return
    console().print(
        f"published {version.label} (pending review: `orchestra registry approve "
        f"{version.agent} {version.version}`)",
        markup=False,
    )


def _change(
    verb: str,
    agent: str,
    version: str,
    actor: str | None,
    note: str,
    database: str | None,
    json_out: bool,
) -> None:
    with _registry(database) as registry:
        changed = registry.change(verb, _principal(registry, actor), agent, version, note)
    if json_out:
        print_json(changed.to_dict())
        return
    console().print(_version_line(changed), markup=False)


VersionArgument = Annotated[str, typer.Argument(help="The version (3 or v3).")]


def _change_command(verb: str, summary: str) -> None:
    """Register ``orchestra registry VERB AGENT VERSION``: one review state change."""

    def command(
        agent: str,
        version: VersionArgument,
        actor: ActorOption = None,
        note: NoteOption = "",
        database: DatabaseOption = None,
        json_out: JsonOption = False,
    ) -> None:
        _change(verb, agent, version, actor, note, database, json_out)

    command.__doc__ = summary
    command.__name__ = f"{verb}_command"
    registry_app.command(verb)(command)


for _verb, _summary in (
    ("approve", "Approve a pending version (a lead or an admin); it becomes the served one."),
    ("reject", "Reject a pending version (a lead or an admin); it is never served."),
    ("deprecate", "Deprecate an approved version: still served, with a warning."),
    ("yank", "Yank a version: it is never served again."),
):
    _change_command(_verb, _summary)


@registry_app.command("diff")
def diff_command(
    agent: str, old: VersionArgument, new: VersionArgument, database: DatabaseOption = None
) -> None:
    """The unified diff between two versions of an agent."""
    with _registry(database) as registry:
        text = registry.diff(agent, old, new)
    typer.echo(
        text or f"{agent}: v{old.lstrip('v')} and v{new.lstrip('v')} are identical", nl=not text
    )


UnitArgument = Annotated[str | None, typer.Argument(help="A unit (default: the organisation).")]


@pool_app.command("show")
def pool_show_command(
    unit: UnitArgument = None,
    developer: Annotated[
        str | None, typer.Option("--developer", help="The pool of this developer's unit.")
    ] = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """The agents a unit (or a developer) may use, and which units narrow that."""
    with _registry(database) as registry:
        pools = UnitPools(registry, _tree(registry))
        view = pools.roster_for(developer).view if developer else pools.view(unit)
    if json_out:
        print_json(view.to_dict())
        return
    out = console()
    own = ", ".join(view.own) if view.own is not None else "inherited"
    out.print(f"unit {view.unit} ({' < '.join(view.chain)}); own pool: {own}", markup=False)
    if view.restricted_by:
        out.print(f"narrowed by: {', '.join(view.restricted_by)}", markup=False)
    out.print(f"{len(view.agents)} agents: {', '.join(view.agents)}", markup=False)


@pool_app.command("set")
def pool_set_command(
    unit: Annotated[str, typer.Argument(help="The unit (or the organisation's name).")],
    entries: Annotated[list[str], typer.Argument(help="Agent names, category:<name>, or '*'.")],
    actor: ActorOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Give a unit its own pool (it narrows what the units above allow)."""
    with _registry(database) as registry:
        view = UnitPools(registry, _tree(registry)).set(_principal(registry, actor), unit, entries)
    if json_out:
        print_json(view.to_dict())
        return
    console().print(f"pool of {view.unit}: {len(view.agents)} agents", markup=False)


@pool_app.command("clear")
def pool_clear_command(
    unit: Annotated[str, typer.Argument(help="The unit.")],
    actor: ActorOption = None,
    database: DatabaseOption = None,
) -> None:
    """Remove a unit's own pool: it inherits its parent's again."""
    with _registry(database) as registry:
        view = UnitPools(registry, _tree(registry)).clear(_principal(registry, actor), unit)
    console().print(f"pool of {view.unit}: inherited, {len(view.agents)} agents", markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    app.add_typer(registry_app, name="registry")
