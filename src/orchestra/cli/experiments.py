"""CLI: orchestra suite / experiment / rollout — task suites from history, experiments
between configurations, and the rollout's go/no-go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestra.cli.output import FAILED, console, fail, print_json
from orchestra.errors import OrchestraError

suite_app = typer.Typer(help="Task suites with hidden acceptance tests.", no_args_is_help=True)
experiment_app = typer.Typer(
    help="Paired experiments between configurations (arms).", no_args_is_help=True
)
rollout_app = typer.Typer(help="Rollout phases and their exit criteria.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="orchestra.yaml to use (default: the nearest).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ResultsOption = Annotated[
    Path | None,
    typer.Option("--results", help="Results file (default: <experiment>.results.jsonl)."),
]


@suite_app.command("from-git")
def from_git(
    repo: Annotated[Path, typer.Argument(help="The git repository whose history to use.")],
    out: Annotated[Path, typer.Option("--out", help="Suite file to write.")] = Path("suite.json"),
    revision: Annotated[str, typer.Option(help="Walk history from this revision.")] = "HEAD",
    limit: Annotated[int | None, typer.Option(help="Keep the newest N tasks.", min=1)] = None,
) -> None:
    """Build a suite from REPO's commits that change both tests and implementation; each
    commit's test changes become its task's hidden tests."""
    from orchestra.experiments import suite_from_git

    try:
        suite = suite_from_git(repo, revision=revision, limit=limit)
    except OrchestraError as exc:
        raise fail(exc) from None
    suite.save(out)
    console().print(f"{len(suite.tasks)} tasks from {repo} written to {out}")
    for task in suite.tasks:
        console().print(
            f"  {task.id}  {task.text.splitlines()[0][:70]}  "
            f"({len(task.hidden_test_files)} hidden test files)",
            highlight=False,
        )


def _results_path(experiment: Path, results: Path | None) -> Path:
    from orchestra.experiments import results_path

    return results_path(experiment, results)


def _write_report(experiment: Path, data: dict[str, Any]) -> None:
    from orchestra.experiments import render_markdown

    experiment.with_suffix(".report.json").write_text(json.dumps(data, indent=2) + "\n")
    experiment.with_suffix(".report.md").write_text(render_markdown(data))


ReplayOption = Annotated[
    bool,
    typer.Option(
        "--replay",
        help="Models replay each task's own commit ($0): checks the harness, not a model.",
    ),
]


def _finish(experiment: Path, results: Path, outcome: Any) -> None:
    from orchestra.experiments import load_recorded

    recorded = load_recorded(experiment, results)
    _write_report(experiment, recorded.report)
    typer.echo(
        f"{outcome.message()}. {recorded.recorded} of {recorded.planned} runs recorded. "
        f"Decisions: {recorded.report['decisions']}"
    )


@experiment_app.command("run")
def run(
    experiment: Annotated[Path, typer.Argument(help="The experiment file (YAML).")],
    results: ResultsOption = None,
    config: ConfigOption = None,
    replay: ReplayOption = False,
) -> None:
    """Run every task on every arm k times as a durable workflow (one step per run, each
    in its own process), within the budget, then write <experiment>.report.md and .json.
    Runs already in the results file are skipped; an unfinished workflow of the same
    experiment is resumed instead of starting a new one."""
    from orchestra.cli.experiment_runs import host_for_experiments
    from orchestra.experiments import (
        ExperimentSpec,
        Suite,
        experiment_plan,
        resume_experiment,
        start_experiment,
        unfinished_experiment,
    )

    try:
        spec = ExperimentSpec.load(experiment)
        suite = Suite.load(experiment.parent / spec.suite)
        path = _results_path(experiment, results)
        with host_for_experiments() as host:
            pending = unfinished_experiment(spec.name)
            if pending is not None:
                console().print(f"resuming unfinished experiment {pending}", highlight=False)
                outcome = resume_experiment(pending, host)
            else:
                options = {"config": str(config.resolve()) if config else None, "replay": replay}
                plan = experiment_plan(
                    spec, suite, experiment=experiment, results=path, options=options
                )
                outcome = start_experiment(spec.name, plan)
        _finish(experiment, Path(outcome.results), outcome)
    except OrchestraError as exc:
        raise fail(exc) from None


@experiment_app.command("resume")
def resume(
    workflow_id: Annotated[str, typer.Argument(help="The experiment's workflow id (`list`).")],
) -> None:
    """Resume an experiment a crash or a failed run stopped: finished runs are replayed
    from their records, not run again."""
    from orchestra.cli.experiment_runs import host_for_experiments
    from orchestra.experiments import resume_experiment

    try:
        with host_for_experiments() as host:
            outcome = resume_experiment(workflow_id, host)
        _finish(Path(outcome.experiment), Path(outcome.results), outcome)
    except OrchestraError as exc:
        raise fail(exc) from None


@experiment_app.command("list")
def list_cmd(
    name: Annotated[str | None, typer.Argument(help="Only this experiment's workflows.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Experiment workflows with their status, newest first."""
    from orchestra.cli.experiment_runs import host_for_experiments
    from orchestra.experiments import list_experiments

    with host_for_experiments():
        rows = list_experiments(name)
    if json_out:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['id']}  {row['status']}")


@experiment_app.command("run-one", hidden=True)
def run_one(
    experiment: Annotated[Path, typer.Argument(help="The experiment file (YAML).")],
    task: Annotated[str, typer.Option(help="Task id.")],
    arm: Annotated[str, typer.Option(help="Arm name.")],
    replicate: Annotated[int, typer.Option(help="Replicate number.", min=0)],
    out: Annotated[Path, typer.Option(help="Where to write the measurement (JSON).")],
    config: ConfigOption = None,
    replay: ReplayOption = False,
) -> None:
    """One run of an experiment (a step of its workflow), in this process."""
    from orchestra.cli.experiment_runs import arm_opener
    from orchestra.config import orchestra_home
    from orchestra.experiments import ExperimentSpec, Suite, run_single

    try:
        spec = ExperimentSpec.load(experiment)
        suite = Suite.load(experiment.parent / spec.suite)
        workdir = orchestra_home() / "experiments" / spec.name
        opener = arm_opener(config, replay=replay, workdir=workdir)
        measured = run_single(spec, suite, opener, (task, arm, replicate), workdir=workdir)
    except OrchestraError as exc:
        raise fail(exc) from None
    out.write_text(json.dumps(measured.to_json(), sort_keys=True), encoding="utf-8")


@experiment_app.command("report")
def report(
    experiment: Annotated[Path, typer.Argument(help="The experiment file (YAML).")],
    results: ResultsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Analyse the recorded runs: paired differences with bootstrap intervals, McNemar's
    exact test, the gates and the decision (also written next to the experiment file)."""
    from orchestra.experiments import load_recorded, render_markdown

    try:
        recorded = load_recorded(experiment, results)
    except OrchestraError as exc:
        raise fail(exc) from None
    if not recorded.runs:
        raise fail(
            f"no run recorded for {experiment}",
            hint=f"run it first: orchestra experiment run {experiment}",
        )
    data = recorded.report
    _write_report(experiment, data)
    if json_out:
        print_json(data)
    else:
        typer.echo(render_markdown(data))


def _inputs(given: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in given:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise fail(
                f"--input {item!r} is not NAME=NUMBER", hint="e.g. --input satisfaction=0.84"
            )
    return out


@rollout_app.command("status")
def status(
    config: ConfigOption = None,
    given: Annotated[
        list[str] | None,
        typer.Option("--input", help="A measured value Orchestra does not record: NAME=NUMBER."),
    ] = None,
    period: Annotated[str | None, typer.Option(help="KPI period (default: last 30 days).")] = None,
    who: Annotated[str | None, typer.Option("--as", help="Who asks (for KPI visibility).")] = None,
    phase: Annotated[str | None, typer.Option(help="Exit 1 unless this phase is a go.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Each rollout phase's exit criteria with their measured values, and go / no-go.
    An unknown value blocks a go."""
    from orchestra.cli.rollout_inputs import kpi_source
    from orchestra.config import find_config, load_config
    from orchestra.experiments import render_rollout, rollout_status

    try:
        cfg = load_config(config)
        source = kpi_source(cfg, _inputs(given or []), period=period, who=who)
        where = config or find_config()
        statuses = rollout_status(cfg.rollout, source, base=where.parent if where else None)
    except OrchestraError as exc:
        raise fail(exc) from None
    if json_out:
        print_json({"phases": [s.to_dict() for s in statuses]})
    else:
        typer.echo(render_rollout(statuses))
    chosen = [s for s in statuses if s.name == phase]
    if phase is not None and not chosen:
        raise fail(f"no rollout phase named {phase!r}", hint="see rollout.phases in orchestra.yaml")
    if chosen and not chosen[0].go:
        raise typer.Exit(FAILED)


def register(app: typer.Typer) -> None:
    """Add ``suite``, ``experiment`` and ``rollout`` to the root application."""
    app.add_typer(suite_app, name="suite")
    app.add_typer(experiment_app, name="experiment")
    app.add_typer(rollout_app, name="rollout")
