"""CLI: orchestra agents ... (the roster)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from orchestra.cli.output import console, fail, print_json
from orchestra.config import OrchestraConfig, find_config, load_config
from orchestra.errors import OrchestraError
from orchestra.roster import (
    BUILTIN_AGENTS_DIR,
    SIMILARITY_THRESHOLD,
    AgentDefinition,
    Roster,
    RosterInvalid,
    RosterProblem,
    effective_tier,
    export_claude_code,
    import_agents,
    load_roster,
    read_directory,
    validate_directory,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="orchestra.yaml to use (default: the nearest one)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(exc: OrchestraError) -> typer.Exit:
    """Print ``exc`` (every problem of a roster or a configuration) and exit 2."""
    if isinstance(exc, RosterInvalid):
        return fail(exc, note=f"{len(exc.problems)} problem(s); nothing was changed.")
    return fail(exc)


def _print_problem(problem: RosterProblem, out: Any) -> None:
    colour = "red" if problem.severity == "error" else "yellow"
    field = f"{problem.field}: " if problem.field else ""
    out.print(
        f"[{colour}]{problem.severity}[/] {escape(problem.location)}: {escape(field)}"
        f"{escape(problem.message)}",
        highlight=False,
        soft_wrap=True,
        markup=True,
    )
    out.print(f"  fix: {problem.hint}", highlight=False, markup=False, soft_wrap=True)


def _context(config_path: Path | None) -> tuple[OrchestraConfig, Path]:
    path = config_path or find_config()
    config = load_config(path)
    return config, (path.parent if path else Path.cwd())


def _roster(config_path: Path | None) -> tuple[Roster, OrchestraConfig]:
    config, base = _context(config_path)
    return load_roster(config=config, base_dir=base), config


def _agent_dict(agent: AgentDefinition, config: OrchestraConfig | None) -> dict[str, Any]:
    return {
        "name": agent.name,
        "description": agent.description,
        "category": agent.category,
        "tier": agent.tier,
        "effective_tier": effective_tier(agent, config),
        "fallback_tier": agent.fallback_tier,
        "claude_tools": list(agent.claude_tools),
        "engine_tools": list(agent.engine_tools),
        "specialties": list(agent.specialties),
        "decides": list(agent.decides),
        "escalates": list(agent.escalates),
        "source": str(agent.source) if agent.source else None,
    }


def list_agents(
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    tier: Annotated[str | None, typer.Option(help="Only this effective tier.")] = None,
    specialty: Annotated[str | None, typer.Option(help="Only agents with this specialty.")] = None,
    json_out: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """List the agents (tier shown after configuration overrides)."""
    try:
        roster, config = _roster(config_path)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    agents = roster.filter(category=category, tier=tier, specialty=specialty, config=config)
    if json_out:
        print_json([_agent_dict(a, config) for a in agents])
        return
    table = Table(title=f"{len(agents)} of {len(roster)} agents")
    for column in ("name", "category", "tier", "tools", "specialties"):
        table.add_column(column, overflow="fold")
    for agent in sorted(agents, key=lambda a: (a.category, a.name)):
        tier_text: str = effective_tier(agent, config)
        if tier_text != agent.tier:
            tier_text = f"{tier_text} (file: {agent.tier})"
        table.add_row(
            agent.name,
            agent.category,
            tier_text,
            ", ".join(agent.claude_tools),
            ", ".join(agent.specialties),
        )
    console().print(table)
    counts = roster.tier_counts(config)
    console().print(
        " / ".join(f"{counts[t]} {t}" for t in ("opus", "sonnet", "haiku")) + " (whole roster)"
    )


def show_agent(
    name: Annotated[str, typer.Argument(help="Agent name, e.g. python-developer.")],
    json_out: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Show one agent: its front matter and its prompt."""
    try:
        roster, config = _roster(config_path)
        agent = roster.get(name)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if json_out:
        print_json({**_agent_dict(agent, config), "prompt": agent.prompt})
        return
    out = console()
    out.print(f"[bold]{agent.name}[/] — {escape(agent.category)}", highlight=False)
    out.print(agent.description, highlight=False, markup=False)
    tier = effective_tier(agent, config)
    overridden = f" (file says {agent.tier})" if tier != agent.tier else ""
    out.print(f"tier: {tier}{overridden}; fallback: {agent.fallback_tier or 'none'}")
    out.print(f"tools: {', '.join(agent.claude_tools)}", highlight=False)
    out.print(f"engine tools: {', '.join(agent.engine_tools)}", highlight=False)
    out.print(f"specialties: {', '.join(agent.specialties)}", highlight=False)
    out.print("decides:", highlight=False)
    for item in agent.decides:
        out.print(f"  - {item}", highlight=False, markup=False)
    out.print("escalates:", highlight=False)
    for item in agent.escalates:
        out.print(f"  - {item}", highlight=False, markup=False)
    out.print(f"source: {agent.source}", highlight=False, markup=False)
    out.rule()
    out.print(agent.prompt, highlight=False, markup=False)


def validate_agents(
    directory: Annotated[
        Path | None, typer.Argument(help="Folder of agent files (default: the built-in roster).")
    ] = None,
    json_out: JsonOption = False,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Similarity (Jaccard, word 3-shingles) that counts as a copy."
        ),
    ] = SIMILARITY_THRESHOLD,
) -> None:
    """Validate agent files: schema, names, tools, tiers, sections, length, near-duplicates."""
    reference: list[AgentDefinition] = []
    if directory is not None and directory.resolve() != BUILTIN_AGENTS_DIR.resolve():
        # A team's folder must not clash with, or copy, the built-in agents.
        reference, _ = read_directory(BUILTIN_AGENTS_DIR)
    report = validate_directory(directory, reference=reference, threshold=threshold)
    if json_out:
        print_json(
            {
                "directory": str(report.directory),
                "builtin": report.builtin,
                "agents": len(report.agents),
                "tier_counts": report.tier_counts,
                "most_similar": (
                    report.most_similar.__dict__ if report.most_similar is not None else None
                ),
                "problems": [p.__dict__ for p in report.problems],
                "ok": report.ok,
            }
        )
    else:
        out = console()
        for problem in report.problems:
            _print_problem(problem, out)
        counts = report.tier_counts
        split = " / ".join(f"{counts[t]} {t}" for t in ("opus", "sonnet", "haiku"))
        rule = "enforced: 1 opus / 37 sonnet / 81 haiku" if report.builtin else "not enforced"
        out.print(f"{len(report.agents)} agents in {report.directory}", highlight=False)
        out.print(f"tier split: {split} ({rule})", highlight=False)
        if report.most_similar is not None:
            pair = report.most_similar
            out.print(
                f"most similar prompts: {pair.first} / {pair.second} ({pair.score:.3f})",
                highlight=False,
                soft_wrap=True,
            )
        verdict = "[green]valid[/]" if report.ok else "[red]invalid[/]"
        out.print(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    if not report.ok:
        raise typer.Exit(1)


def export_agents(
    dest: Annotated[Path, typer.Argument(help="Folder to write into, e.g. .claude/agents.")],
    format: Annotated[
        str, typer.Option("--format", help="Export format; only claude-code exists.")
    ] = "claude-code",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files Orchestra did not write.")
    ] = False,
    config_path: ConfigOption = None,
) -> None:
    """Export the roster as Claude Code sub-agents (model = tier after overrides)."""
    if format != "claude-code":
        raise fail(f"unknown format {format!r}", "use --format claude-code")
    try:
        roster, config = _roster(config_path)
        result = export_claude_code(roster, dest, config, force=force)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    console().print(
        f"exported {len(roster)} agents to {dest}: {len(result.written)} written, "
        f"{len(result.unchanged)} unchanged, {len(result.removed)} removed",
        highlight=False,
        soft_wrap=True,
    )


def import_agents_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder holding your <name>.md agent files.")],
    config_path: ConfigOption = None,
) -> None:
    """Validate a folder of agent files and copy them into the import folder."""
    try:
        config, base = _context(config_path)
        existing = load_roster(config=config, base_dir=base)
        target = config.roster.import_dir
        target = target if target.is_absolute() else base / target
        result = import_agents(directory, target, list(existing))
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if result.report is not None:
        for problem in result.report.warnings:
            _print_problem(problem, console())
    console().print(
        f"imported into {target}: {len(result.added)} added, {len(result.replaced)} replaced, "
        f"{len(result.unchanged)} unchanged",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    agents = typer.Typer(help="The agent roster: list, show, validate, export, import.")
    agents.command("list")(list_agents)
    agents.command("show")(show_agent)
    agents.command("validate")(validate_agents)
    agents.command("export")(export_agents)
    agents.command("import")(import_agents_cmd)
    app.add_typer(agents, name="agents", no_args_is_help=True)
