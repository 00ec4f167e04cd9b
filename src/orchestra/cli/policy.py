"""CLI: orchestra policy check | test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestra.cli.output import FAILED, console, print_json
from orchestra.cli.output import fail as _fail
from orchestra.config import load_config
from orchestra.errors import OrchestraError
from orchestra.policy import PolicyEngine, PolicyInvalid, read_cases, run_cases

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="orchestra.yaml to read (default: the nearest one)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _engine(config_path: Path | None) -> PolicyEngine:
    return PolicyEngine.from_config(load_config(config_path))


def check(config_path: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Validate the policies against Orchestra's Cedar schema: each problem with file:line:col."""
    try:
        engine = _engine(config_path)
    except PolicyInvalid as exc:
        if json_out:
            print_json({"ok": False, "problems": [p.__dict__ for p in exc.problems]})
        else:
            out = console()
            for problem in exc.problems:
                out.print(f"[red]error[/] {problem}", highlight=False, soft_wrap=True)
            out.print(f"fix: {exc.hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(FAILED) from exc
    except OrchestraError as exc:
        raise _fail(exc) from exc
    bundle = engine.bundle
    if json_out:
        print_json(
            {
                "ok": True,
                "version": bundle.version,
                "files": list(bundle.files),
                "policies": list(bundle.ids),
            }
        )
        return
    console().print(
        f"[green]valid[/]: {len(bundle.ids)} policies in {len(bundle.files)} file(s), "
        f"version {bundle.version}",
        highlight=False,
    )


def test(
    cases_file: Annotated[Path, typer.Argument(help="YAML or JSON file of example requests.")],
    config_path: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run example requests against the policies and compare with the expected decisions."""
    try:
        engine = _engine(config_path)
        results = run_cases(engine, read_cases(cases_file))
    except OrchestraError as exc:
        raise _fail(exc) from exc
    failed = [r for r in results if not r.passed]
    if json_out:
        print_json(
            {
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "cases": [
                    {
                        "name": r.case.name,
                        "passed": r.passed,
                        "expected": r.case.expect,
                        "decision": "permit" if r.decision.allowed else "deny",
                        "policy_ids": list(r.decision.policy_ids),
                        "reasons": list(r.decision.reasons),
                    }
                    for r in results
                ],
            }
        )
    else:
        out = console()
        for r in results:
            got = "permit" if r.decision.allowed else "deny"
            mark = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
            out.print(
                f"{mark} {r.case.name}: {got} by {r.decision.refused_by}",
                highlight=False,
                soft_wrap=True,
            )
            if not r.passed:
                want = r.case.expect + (f" by {r.case.policy}" if r.case.policy else "")
                out.print(
                    f"     expected {want}; {'; '.join(r.decision.reasons)}",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed", highlight=False)
    if failed:
        raise typer.Exit(FAILED)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    group = typer.Typer(help="Check and test the Cedar policies.")
    group.command("check")(check)
    group.command("test")(test)
    app.add_typer(group, name="policy", no_args_is_help=True)
