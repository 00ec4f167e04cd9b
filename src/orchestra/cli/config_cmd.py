"""CLI: orchestra init, orchestra config ...."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestra.cli.output import console, print_json
from orchestra.cli.output import fail as _fail
from orchestra.config.check import check_config_file
from orchestra.config.starter import write_starter_config
from orchestra.errors import OrchestraError
from orchestra.org import ORGANISATION_CHECK
from orchestra.roster import ROSTER_CHECK

# The checks configuration cannot make itself: it sits below the packages that know them.
CONFIG_CHECKS = (ORGANISATION_CHECK, ROSTER_CHECK)


def init(
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing orchestra.yaml.")
    ] = False,
) -> None:
    """Write a commented starter orchestra.yaml into the current folder."""
    try:
        path = write_starter_config(Path.cwd(), force=force)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    console().print(f"wrote {path}", highlight=False)
    console().print("next: `orchestra config check`, then `orchestra org stage`")


def check(
    config_path: Annotated[
        Path | None,
        typer.Option("--config", help="File to check (default: the nearest orchestra.yaml)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Check the configuration: every error with its file:line and its fix."""
    try:
        report = check_config_file(config_path, checks=CONFIG_CHECKS)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if json_out:
        print_json(
            {
                "source": report.source,
                "ok": report.ok,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    else:
        out = console()
        for problem in report.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            where = (
                f"{problem.location}: {problem.field}: "
                if problem.field
                else (f"{problem.location}: ")
            )
            out.print(f"[{colour}]{problem.severity}[/] ", end="")
            out.print(f"{where}{problem.message}", highlight=False, markup=False, soft_wrap=True)
            out.print(f"  fix: {problem.hint}", highlight=False, markup=False, soft_wrap=True)
        verdict = "[green]valid[/]" if report.ok else "[red]invalid[/]"
        out.print(
            f"{report.source}: {verdict} — {len(report.errors)} error(s), "
            f"{len(report.warnings)} warning(s)",
            highlight=False,
            soft_wrap=True,
        )
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    app.command("init")(init)
    config = typer.Typer(help="Check the configuration.")
    config.command("check")(check)
    app.add_typer(config, name="config", no_args_is_help=True)
