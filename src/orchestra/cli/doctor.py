"""CLI: orchestra doctor — how a repository's tests will run, checked at $0."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from orchestra.cli.output import console, error_console, print_json
from orchestra.errors import OrchestraError


def doctor(
    repo: Annotated[Path, typer.Option(help="The git repository to check.")] = Path("."),
    allow_preexisting_failures: Annotated[
        bool,
        typer.Option(
            "--allow-preexisting-failures",
            help="Record tests that already fail at HEAD instead of stopping.",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Say how REPO's tests will run, whether the baseline passes and how coverage is
    measured. No model is called; nothing is spent."""
    from orchestra.config.loader import load_config
    from orchestra.config.paths import orchestra_home
    from orchestra.repository.doctor import run_doctor
    from orchestra.tools import CommandLimits

    scratch = Path(tempfile.mkdtemp(prefix="orchestra-doctor-"))
    try:
        config = load_config()
        state = orchestra_home()
        cache = state / "cache" / "baselines" if state.is_dir() else None
        engine = config.engine
        limits = CommandLimits(
            timeout_s=engine.command_timeout_s,
            memory_mb=engine.command_memory_mb,
            isolate_network=engine.isolate_network,
        )
        report = run_doctor(
            repo,
            config,
            home=scratch,
            limits=limits,
            cache_dir=cache,
            allow_preexisting=True if allow_preexisting_failures else None,
        )
    except OrchestraError as exc:
        error_console().print(
            f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True
        )
        if exc.hint:
            error_console().print(
                f"[bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(2) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if json_out:
        print_json(report.to_dict())
    else:
        _show(report)
    if not report.ok:
        raise typer.Exit(1)


def _show(report: object) -> None:
    from orchestra.repository.doctor import DoctorReport

    assert isinstance(report, DoctorReport)
    out = console()
    env = report.environment
    out.print(
        f"[bold]repository[/] {escape(str(report.repository))}", highlight=False, soft_wrap=True
    )
    configured = report.configured_under or "not configured (detected)"
    out.print(f"  settings key: {escape(configured)}", highlight=False, soft_wrap=True)
    out.print(
        f"  keys you can use: {escape(', '.join(report.keys))}", highlight=False, soft_wrap=True
    )
    out.print("[bold]tests[/]", highlight=False, soft_wrap=True)
    out.print(f"  command: {escape(' '.join(env.command))}", highlight=False, soft_wrap=True)
    out.print(f"  environment: {env.kind} ({escape(env.source)})", highlight=False, soft_wrap=True)
    out.print(f"  runner: {env.runner}", highlight=False, soft_wrap=True)
    if env.python_path:
        out.print(
            f"  imports from the worktree first: {escape(', '.join(env.python_path))}",
            highlight=False,
            soft_wrap=True,
        )
    out.print("[bold]baseline[/]", highlight=False, soft_wrap=True)
    if report.baseline is not None:
        base = report.baseline
        counts = ", ".join(f"{v} {k}" for k, v in base.counts.items() if v)
        cached = " (cached)" if base.cached else ""
        out.print(
            f"  passes at {base.commit[:10]}: {len(base.test_ids)} tests; {counts or 'no tests'}"
            f"{cached}",
            highlight=False,
            soft_wrap=True,
        )
        if base.preexisting_failures:
            out.print(
                f"  pre-existing failures left out of the gates: {len(base.preexisting_failures)}",
                highlight=False,
                soft_wrap=True,
            )
    elif report.failure is not None:
        out.print(
            f"  [red]fails:[/] {escape(report.failure.message)}", highlight=False, soft_wrap=True
        )
    out.print("[bold]coverage[/]", highlight=False, soft_wrap=True)
    out.print(f"  {escape(report.coverage.reason)}", highlight=False, soft_wrap=True)
    if report.advice:
        out.print("[bold]what to change[/]", highlight=False, soft_wrap=True)
        for item in report.advice:
            out.print(f"  - {escape(item)}", highlight=False, soft_wrap=True)
    verdict = "[green]ready[/]" if report.ok else "[red]not ready[/]"
    out.print(f"{verdict}: no model was called, $0 spent", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``orchestra doctor`` to the root application."""
    app.command("doctor")(doctor)
