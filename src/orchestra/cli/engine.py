"""CLI: orchestra run, runs, status, resume, cancel, report, demo."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestra.cli.output import FAILED, console, error_console, fail, print_json
from orchestra.errors import OrchestraError

if TYPE_CHECKING:
    from orchestra.policy import Principal

RUN_HELP = "Pipeline runs: take a task to a tested, reviewed branch."


def _fail(exc: OrchestraError) -> typer.Exit:
    """Print ``exc`` and exit 2: the user's error (a failed run exits 1)."""
    return fail(exc)


def _services(*, existing_only: bool = False) -> Any:
    """The composition root for these commands (``orchestra.app.Orchestra``); with
    ``existing_only``, over the state folder's database only if it exists (commands about
    recorded runs create nothing)."""
    from orchestra.app import Orchestra
    from orchestra.config import default_database_url
    from orchestra.config.paths import existing_database_url

    url = default_database_url()
    return Orchestra.from_environment(
        database_url=existing_database_url(url) if existing_only else url
    )


@contextmanager
def _run_store() -> Iterator[tuple[Any, Any]]:
    """The state folder's run store and the services it came from; errors become exits.
    Runs are only ever recorded by a run, so a missing database is reported, not created."""
    try:
        services = _services(existing_only=True)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    try:
        yield services.runs(), services
    except OrchestraError as exc:
        raise _fail(exc) from exc
    finally:
        services.close()


def _row_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "task": row.task,
        "status": row.status,
        "phase": row.phase,
        "branch": row.branch,
        "repo": row.repo_path,
        "failure_reason": row.failure_reason,
        "report": row.report_path,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
    }


def _test_status(home: Path | None, run_id: str) -> str:
    """The latest test result the run recorded (baseline, red gate, green, review...)."""
    from orchestra.pipelines import counts_text

    if home is None:
        return ""
    latest = home / "runs" / run_id / "tests" / "latest.json"
    try:
        data = json.loads(latest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "   tests: none run yet"
    verdict = data.get("verdict") or ("pass" if data.get("ok") else "FAIL")
    counts = data if any(k in data for k in ("passed", "failed", "error")) else None
    result = f" — {counts_text(counts, skipped=False)}" if counts else ""
    return f"   tests ({data.get('name', '?')}): {verdict}{result}"


def _costs(database: Any, run_id: str, cost_source: Any | None) -> dict[str, float] | None:
    """Dollars per step: the running gateway's, else the ledger in this database; ``None``
    when neither has the run's calls (its gateway keeps its own ledger)."""
    if cost_source is not None:
        try:
            return dict(cost_source.costs_for_run(run_id))
        except Exception:  # noqa: S110 - the view must not kill the run; read the ledger
            pass
    from orchestra.engine import ledger_cost

    found = ledger_cost(database, run_id)
    return found.by_step if found.calls else None


def _view(
    runs: Any, run_id: str, costs: dict[str, float] | None, home: Path | None = None
) -> Group:
    row = runs.get(run_id)
    steps = runs.steps(run_id)
    table = Table(title=f"{row.id} — phase: {row.phase or 'not started'}", expand=False)
    for column in ("step", "agent", "status", "calls", "tokens in", "tokens out", "cost"):
        table.add_column(column)
    total_in = total_out = 0
    for step in steps:
        tokens_in = step.input_tokens + step.cache_read_tokens
        total_in += tokens_in
        total_out += step.output_tokens
        cost = (costs or {}).get(step.step)
        table.add_row(
            step.step,
            step.agent,
            step.status,
            str(step.model_calls),
            str(tokens_in),
            str(step.output_tokens),
            "-" if cost is None else f"${cost:.4f}",
        )
    running = sum(1 for s in steps if s.status == "running")
    calls = sum(s.model_calls for s in steps)
    if costs is not None:
        dollars = f"${sum(costs.values()):.4f}"
    elif calls:
        dollars = "unknown (no ledger entries here: its gateway keeps its own)"
    else:
        dollars = "$0.0000 (no model call yet)"
    summary = Text(
        f"agents working now: {running}   tokens so far: {total_in} in / {total_out} out   "
        f"spent: {dollars}   run status: {row.status}" + _test_status(home, run_id)
    )
    return Group(table, summary)


def _follow(services: Any, run_id: str, cost_source: Any | None) -> Any:
    """Live view of a run until it ends (read from the database); returns its last row.
    ``services`` are an engine's (``EngineServices``: runs, home and database)."""
    runs = services.runs
    out = console()
    home = services.home
    database = services.database

    def costs() -> dict[str, float] | None:
        return _costs(database, run_id, cost_source)

    with Live(_view(runs, run_id, costs(), home), console=out, refresh_per_second=4) as live:
        while True:
            row = runs.get(run_id)
            live.update(_view(runs, run_id, costs(), home))
            if row.status not in {"running", "queued"}:
                return row
            time.sleep(0.5)


def _watch(runtime: Any, run_id: str, cost_source: Any | None) -> Any:
    """Live view until the run ends; returns its final row."""
    _follow(runtime.services, run_id, cost_source)
    return runtime.wait(run_id)


def _summary(row: Any) -> None:
    from orchestra.pipelines import summary_line

    out = console()
    colour = "green" if row.status == "succeeded" else "red"
    out.print(f"[{colour}]run {row.id}: {row.status}[/{colour}]")
    if row.failure_reason:
        out.print(f"reason: {escape(row.failure_reason)}")
    if row.worktree_path:
        out.print(f"branch: {row.branch} (worktree {row.worktree_path})")
    else:
        out.print(f"branch: {row.branch} (no worktree was created)")
    if row.report_path:
        out.print(f"report: {row.report_path}")
        report = Path(row.report_path).with_suffix(".json")
        if report.is_file():
            out.print(escape(summary_line(json.loads(report.read_text()))))


def _landing(database: Any, row: Any) -> Any:
    """The merge queue entry ``engine.land_on_success`` made for the run (``None``: none)."""
    from orchestra.landing import entries

    if row.status != "succeeded":
        return None
    made = [e for e in entries(database, row.repo_path) if e.run_id == row.id]
    return made[-1] if made else None


@contextmanager
def _runtime(
    gateway_url: str | None, developer: str | None = None, *, take_queued_runs: bool = False
) -> Iterator[tuple[Any, Any]]:
    """An engine runtime on the configured gateway (or one started in this process); with
    ``developer``, its agents are that developer's pool in the agent registry; with
    ``take_queued_runs``, a worker of the shared run queue (a queued run's pool is loaded
    from the agent registry)."""
    from orchestra.errors import EngineError

    with _services() as services:
        config = services.config
        agents = services.pool_agents(developer, error_console().print) if developer else None
        url_to_use = gateway_url or config.engine.gateway_url
        if url_to_use:
            with services.engine_with_remote_gateway(
                url_to_use, _gateway_key(config), agents=agents, take_queued_runs=take_queued_runs
            ) as runtime:
                runtime.services.pools = _pools(services)
                yield runtime, None
            return
        if not config.tiers:
            raise EngineError(
                "no model is configured",
                hint="add a provider, models and tiers to orchestra.yaml (see docs/quickstart.md)"
                ", or try the offline demo: orchestra demo",
            )
        knowledge = services.knowledge(error_console().print)
        with services.engine_with_local_gateway(
            agents=agents, knowledge=knowledge, take_queued_runs=take_queued_runs
        ) as (runtime, gateway):
            runtime.services.pools = _pools(services)
            yield runtime, gateway


def _gateway_key(config: Any) -> str:
    """The developer's gateway key (``engine.gateway_key_env``), or a refusal."""
    from orchestra.errors import EngineError

    key = os.environ.get(config.engine.gateway_key_env)
    if not key:
        raise EngineError(
            f"no gateway key in ${config.engine.gateway_key_env}",
            hint="create one with `orchestra keys create` and export it",
        )
    return key


def _pools(services: Any) -> Any:
    """Loads a developer's agent pool (for runs taken from the run queue)."""
    return lambda developer: services.pool_agents(developer, error_console().print)


@contextmanager
def _submitter(gateway_url: str | None) -> Iterator[Any]:
    """An engine runtime that is not launched: it records runs, charges them to this
    developer (a first key, in the configured gateway or this database's accounting) and
    puts them on the shared run queue (``orchestra run --queue``). It makes no model call."""
    from orchestra.engine import HttpModelClient
    from orchestra.engine.gateway_link import GatewayRunKeys, LocalRunKeys, run_developer

    with _services() as services:
        config = services.config
        url = gateway_url or config.engine.gateway_url
        closers: list[Any] = []
        if url:
            key = _gateway_key(config)
            keys: Any = GatewayRunKeys(url, key)
            client = HttpModelClient(url, key)
            closers.append(keys.close)
        else:
            developer, team = run_developer(config)
            accounting = services.accounting()
            closers.append(accounting.close)
            keys = LocalRunKeys(accounting, developer, team)
            client = HttpModelClient("http://127.0.0.1:9", "")  # never called
        closers.append(client.close)
        try:
            yield services.engine(client, run_keys=keys)
        finally:
            for close in closers:
                close()


def _run_principal(services: Any, developer: str | None) -> Principal | None:
    """Who starts a run, for the ``start_run`` policies: the CLI's acting developer
    (``--developer``, else ``$ORCHESTRA_DEVELOPER`` …; :func:`acting_identity`), as the
    policies' organisation knows them (roles, unit, regions)."""
    from orchestra.cli.acting import acting_identity
    from orchestra.policy import Principal

    policy = services.policy
    if policy is None:
        return None
    identity = acting_identity(services.config, developer).principal
    known: Principal | None = policy.principal_for_developer(identity.id)
    if known is not None:
        return known
    return Principal("developer", identity.id, identity.roles, identity.unit, identity.lead_of)


def _run_pool(services: Any, run_id: str) -> str | None:
    """The developer whose agent pool the run was started with (``None``: none)."""
    from orchestra.engine import ArtifactStore, run_pool

    return run_pool(ArtifactStore(services.home, services.database), run_id)


def _end_run_keys(services: Any, run_id: str) -> None:
    """Revoke a cancelled run's keys here too: its engine revokes them as its workflow
    stops, but a run whose process is gone has no engine to do it."""
    config = services.config
    if config.engine.gateway_url:
        key = os.environ.get(config.engine.gateway_key_env)
        if not key:
            error_console().print(
                f"note: ${config.engine.gateway_key_env} is not set, so the run's gateway key "
                "stays usable until its engine stops"
            )
            return
        from orchestra.engine.gateway_link import GatewayRunKeys

        remote = GatewayRunKeys(config.engine.gateway_url, key)
        try:
            remote.end(run_id)
        finally:
            remote.close()
        return
    accounting = services.accounting()
    try:
        accounting.runs.end(run_id, actor="cli")
    finally:
        accounting.close()


def _queued(flag: bool | None) -> bool:
    """``--queue``/``--no-queue``, else ``engine.workers.distribute``."""
    if flag is not None:
        return flag
    with _services() as services:
        return bool(services.config.engine.workers.distribute)


def _submit(
    task: str,
    repo: Path,
    budget: float | None,
    gateway: str | None,
    developer: str | None,
    wait: bool,
) -> None:
    """``orchestra run --queue``: queue the run, print its id, and with ``wait`` follow it
    (the exit code is then the run's)."""
    with _submitter(gateway) as runtime:
        principal = _run_principal(runtime.services, developer)
        run_id = runtime.submit_run(
            task, repo, budget_usd=budget, principal=principal, pool=developer
        )
        console().print(f"run {run_id} queued for a worker (`orchestra status {run_id}`)")
        if not wait:
            return
        row = _follow(runtime.services, run_id, None)
    _summary(row)
    if row.status != "succeeded":
        raise typer.Exit(FAILED)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""

    @app.command("run")
    def run_cmd(
        task: Annotated[str, typer.Argument(help="What to build or fix.")],
        repo: Annotated[Path, typer.Option(help="The git repository to work on.")] = Path("."),
        budget: Annotated[
            float | None, typer.Option(help="Dollar budget of this run (gateway-enforced).")
        ] = None,
        gateway: Annotated[
            str | None, typer.Option(help="Gateway URL (default: engine.gateway_url or local).")
        ] = None,
        developer: Annotated[
            str | None,
            typer.Option(
                "--developer",
                envvar="ORCHESTRA_DEVELOPER",
                help="Run with the agents of this developer's pool in the agent registry.",
            ),
        ] = None,
        queue: Annotated[
            bool | None,
            typer.Option(
                "--queue/--no-queue",
                help="Put the run on the shared run queue for an `orchestra worker` to take "
                "(PostgreSQL; default: engine.workers.distribute) and print its id.",
            ),
        ] = None,
        wait: Annotated[
            bool,
            typer.Option("--wait", help="With --queue: follow the run until it ends."),
        ] = False,
    ) -> None:
        """Take TASK to a tested, reviewed branch with the test-first pipeline."""
        from orchestra.engine import check_repository

        try:
            check_repository(repo)
            if _queued(queue):
                _submit(task, repo, budget, gateway, developer, wait)
                return
            with _runtime(gateway, developer) as (runtime, local):
                principal = _run_principal(runtime.services, developer)
                run_id = runtime.start_run(
                    task, repo, budget_usd=budget, principal=principal, pool=developer
                )
                row = _watch(runtime, run_id, local)
                landing = _landing(runtime.services.database, row)
        except OrchestraError as exc:
            raise _fail(exc) from exc
        _summary(row)
        if row.status != "succeeded":
            raise typer.Exit(FAILED)
        if landing is not None:
            from orchestra.cli.landing import REFUSED, show_entry

            console().print("merge queue (engine.land_on_success):", highlight=False)
            show_entry(landing)
            if landing.status in REFUSED:
                raise typer.Exit(FAILED)

    @app.command("runs")
    def runs_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """List recent runs."""
        from orchestra.pipelines import task_title

        with _run_store() as (runs, _services):
            rows = runs.list_runs()
        if as_json:
            print_json([_row_dict(r) for r in rows])
            return
        table = Table(title="runs")
        for column in ("id", "status", "phase", "task"):
            table.add_column(column)
        for r in rows:
            table.add_row(r.id, r.status, r.phase or "", escape(task_title(r.task, 60)))
        console().print(table)

    @app.command("status")
    def status_cmd(
        run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix works).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Show a run's phase, steps, latest test result and cost (from the ledger)."""
        with _run_store() as (runs, services):
            row = runs.get(run_id)
            costs = _costs(services.database, row.id, None)
            if as_json:
                steps = [
                    {
                        "id": s.step,
                        "agent": s.agent,
                        "status": s.status,
                        "input_tokens": s.input_tokens,
                        "output_tokens": s.output_tokens,
                        "cost_usd": None if costs is None else costs.get(s.step, 0.0),
                        "started_at": s.started_at,
                        "finished_at": s.finished_at,
                    }
                    for s in runs.steps(row.id)
                ]
                total = None if costs is None else sum(costs.values())
                print_json({**_row_dict(row), "cost_usd": total, "steps": steps})
            else:
                console().print(_view(runs, row.id, costs, services.home))

    @app.command("report")
    def report_cmd(
        run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix works).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
    ) -> None:
        """Print a finished run's report."""
        from orchestra.errors import EngineError

        with _run_store() as (runs, _services):
            row = runs.get(run_id)
            if not row.report_path:
                raise EngineError(
                    f"run {row.id} has no report yet ({row.status})",
                    hint="wait for it to finish, or `orchestra resume` it",
                )
            path = Path(row.report_path)
            text = path.with_suffix(".json" if as_json else ".md").read_text(encoding="utf-8")
            print(text)

    @app.command("resume")
    def resume_cmd(
        run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix works).")],
        budget: Annotated[
            float | None,
            typer.Option(
                help="New dollar budget of the run: continues a run stopped by its budget."
            ),
        ] = None,
        gateway: Annotated[str | None, typer.Option(help="Gateway URL.")] = None,
    ) -> None:
        """Continue a run whose process stopped, or (with --budget) a run stopped by its
        budget; completed steps are not repeated."""
        from orchestra.engine import FINAL_STATUSES, resume_command, stopped_by_budget
        from orchestra.errors import EngineError

        with _run_store() as (runs, _services):
            row = runs.get(run_id)
            if stopped_by_budget(row) and budget is None:
                raise _fail(
                    EngineError(
                        f"run {row.id} was stopped by its budget",
                        hint=f"continue it with a higher budget: {resume_command(row.id)}",
                    )
                )
            if row.status in FINAL_STATUSES and not stopped_by_budget(row):
                raise _fail(
                    EngineError(
                        f"run {row.id} already ended ({row.status})",
                        hint="start a new run with `orchestra run`",
                    )
                )
            pool = _run_pool(_services, row.id)  # a run started with a pool resumes with it
        try:
            with _runtime(gateway, pool) as (runtime, local):
                if stopped_by_budget(row):
                    runtime.continue_run(row.id, budget)
                else:
                    runtime.resume(row.id, budget_usd=budget)
                row = _watch(runtime, row.id, local)
        except OrchestraError as exc:
            raise _fail(exc) from exc
        _summary(row)
        if row.status != "succeeded":
            raise typer.Exit(FAILED)

    @app.command("cancel")
    def cancel_cmd(
        run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix works).")],
    ) -> None:
        """Cancel a run: its workflow and agents stop at their next step."""
        from orchestra.cli.acting import acting_as
        from orchestra.engine import cancel_run

        with _run_store() as (runs, services):
            actor = acting_as(services.config, "cancel_run")
            row = cancel_run(runs, services.system_database_url, run_id, actor=actor)
            _end_run_keys(services, row.id)
            console().print(f"run {row.id} cancelled; its branch {row.branch} keeps what was done")

    @app.command("demo")
    def demo_cmd(
        folder: Annotated[
            Path, typer.Option(help="Where the sample repository and state go.")
        ] = Path(".orchestra/demo"),
    ) -> None:
        """The main job offline: a scripted model takes a sample repo to a reviewed branch."""
        from orchestra.demo import run_demo

        out = console()
        try:
            result = run_demo(folder.resolve(), say=out.print, watch=_watch)
        except OrchestraError as exc:
            raise _fail(exc) from exc
        report = Path(result["report"]) if result["report"] else None
        if report and report.is_file():
            out.line()  # the live view's last line ends without one when not on a terminal
            out.print(report.read_text(encoding="utf-8"), markup=False, highlight=False)
        colour = "green" if result["status"] == "succeeded" else "red"
        out.print(
            f"[{colour}]run {result['run_id']}: {result['status']}[/{colour}] in "
            f"{result['seconds']}s, {result['model_calls']} scripted model calls through the "
            "gateway"
        )
        out.print(f"branch {result['branch']} in {result['repo']} (git log {result['branch']})")
        out.print(f"report: {result['report']} (also: orchestra report {result['run_id']})")
        out.print(
            "\nThe model above was scripted. To use a real one, configure a provider and tiers "
            "in orchestra.yaml: an Anthropic key (providers.anthropic: {kind: anthropic, "
            "base_url: https://api.anthropic.com, api_key_env: ANTHROPIC_API_KEY}) or a local "
            "OpenAI-compatible server such as Ollama (kind: openai, base_url: "
            'http://127.0.0.1:11434/v1), then: orchestra run "your task" --repo PATH'
        )
        if result["status"] != "succeeded":
            raise typer.Exit(FAILED)
