"""CLI: orchestra land, orchestra queue — a repository's merge queue (docs/merge-queue.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from orchestra.cli.output import FAILED, console, error_console, fail, print_json
from orchestra.errors import OrchestraError

QUEUE_HELP = "The merge queue: rebase a finished branch onto main, test it, fast-forward."
ONTO_HELP = "The branch to land on (default: the checkout's current branch)."
REFUSED = frozenset({"conflict", "failed", "error"})
"""Entry statuses of a branch that did not land and is left for a person."""


@contextmanager
def _services(*, existing_only: bool = True) -> Iterator[Any]:
    """The composition root over the state folder's database; errors become exits. Only
    ``queue add`` creates the database: the other commands are about recorded state."""
    from orchestra.app import Orchestra
    from orchestra.config import default_database_url
    from orchestra.config.paths import existing_database_url

    url = default_database_url()
    try:
        services = Orchestra.from_environment(
            database_url=existing_database_url(url) if existing_only else url
        )
    except OrchestraError as exc:
        raise fail(exc) from exc
    try:
        yield services
    except OrchestraError as exc:
        raise fail(exc) from exc
    finally:
        services.close()


def _who(services: Any) -> str:
    """The acting developer, once their role may ``land`` (as the API checks it)."""
    from orchestra.cli.acting import acting_as

    return acting_as(services.config, "land")


def _onto(repo: Path, onto: str | None) -> str:
    from orchestra.landing import target_branch

    return target_branch(repo, onto)


def _lander(services: Any) -> Any:
    from orchestra.landing import Lander

    return Lander.for_config(services.database, services.config)


def show_entry(entry: Any) -> None:
    """One queue entry's line, its reason, conflicting files and overlaps."""
    line = f"entry {entry.id} ({escape(entry.branch)} -> {escape(entry.onto)}): {entry.status}"
    if entry.landed_commit:
        line += f" at {entry.landed_commit[:10]}"
    console().print(line, highlight=False, soft_wrap=True)
    if entry.reason:
        console().print(f"  {escape(entry.reason)}", highlight=False, soft_wrap=True)
    for path in entry.files:
        console().print(f"  conflict: {escape(path)}", highlight=False)
    for other, paths in (entry.overlaps or {}).items():
        console().print(f"  shares {escape(', '.join(paths))} with run {other}", highlight=False)


def _queue_and_land(services: Any, entry: Any, wait: bool, as_json: bool) -> None:
    """Work through the queue (unless ``wait`` is off) and report ``entry``'s fate."""
    from orchestra.landing import get_entry

    if wait:
        _lander(services).process(entry.repo)
    entry = get_entry(services.database, entry.id)
    if as_json:
        print_json(entry.to_dict())
    else:
        show_entry(entry)
        if entry.status in {"queued", "landing"}:
            error_console().print(
                "another lander is working through this repository's queue; it lands this "
                "entry too (`orchestra queue list` shows when)",
                highlight=False,
            )
    if entry.status in REFUSED:
        raise typer.Exit(FAILED)


def land(
    run_id: Annotated[str, typer.Argument(help="A run that succeeded (a unique prefix works).")],
    onto: Annotated[str | None, typer.Option(help=ONTO_HELP)] = None,
    wait: Annotated[bool, typer.Option(help="Land now (else only queue it).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Queue RUN's branch to land: rebased onto main, tested, fast-forwarded when green.
    Exits 1 when it is refused (a conflict, red tests), with the reason and files."""
    from orchestra.landing import enqueue, find_run, run_branch

    with _services() as services:
        found = find_run(services.database, run_id)
        repo, branch = run_branch(services.database, found)
        entry = enqueue(
            services.database,
            repo,
            branch,
            _onto(Path(repo), onto),
            requested_by=_who(services),
            run_id=found,
        )
        _queue_and_land(services, entry, wait, as_json)


def register(app: typer.Typer) -> None:
    """Add ``orchestra land`` and ``orchestra queue`` to the root application."""
    app.command("land")(land)
    group = typer.Typer(help=QUEUE_HELP, no_args_is_help=True)
    app.add_typer(group, name="queue")

    @group.command("add")
    def add_cmd(
        branch: Annotated[str, typer.Argument(help="The branch to land.")],
        repo: Annotated[Path, typer.Option(help="The repository.")] = Path("."),
        onto: Annotated[str | None, typer.Option(help=ONTO_HELP)] = None,
        wait: Annotated[bool, typer.Option(help="Land now (else only queue it).")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Queue any BRANCH of REPO (not only a run's) to land."""
        from orchestra.landing import enqueue

        with _services(existing_only=False) as services:
            entry = enqueue(
                services.database,
                str(repo),
                branch,
                _onto(repo, onto),
                requested_by=_who(services),
            )
            _queue_and_land(services, entry, wait, as_json)

    @group.command("list")
    def list_cmd(
        repo: Annotated[Path | None, typer.Option(help="Only this repository.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """The queue's entries, oldest first, with the reason and files of each refusal."""
        from orchestra.landing import entries

        with _services() as services:
            found = entries(services.database, str(repo) if repo else None)
        if as_json:
            print_json([e.to_dict() for e in found])
            return
        table = Table(title="merge queue")
        for column in ("id", "status", "branch", "onto", "run", "reason / files"):
            table.add_column(column)
        for e in found:
            detail = e.reason or ""
            if e.files:
                detail += "\n" + ", ".join(e.files)
            table.add_row(
                str(e.id),
                e.status,
                escape(e.branch),
                escape(e.onto),
                e.run_id or "",
                escape(detail),
            )
        console().print(table)

    @group.command("run")
    def run_cmd(
        repo: Annotated[Path, typer.Option(help="The repository.")] = Path("."),
    ) -> None:
        """Land REPO's queued entries now (if no other lander is doing it)."""
        with _services() as services:
            _who(services)
            done = _lander(services).process(str(repo))
        for entry in done:
            show_entry(entry)
        if not done:
            console().print("nothing landed: the queue is empty or another lander has it")

    @group.command("drop")
    def drop_cmd(
        entry_id: Annotated[int, typer.Argument(help="The entry (see `orchestra queue list`).")],
    ) -> None:
        """Remove an entry a person has dealt with (not one being landed right now)."""
        from orchestra.landing import drop

        with _services() as services:
            _who(services)
            entry = drop(services.database, entry_id)
        console().print(f"dropped entry {entry.id} ({escape(entry.branch)})", highlight=False)
