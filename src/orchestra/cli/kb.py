"""CLI: orchestra kb ... (the knowledge store)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from orchestra.cli.output import console, error_console, print_json
from orchestra.cli.output import fail as _fail
from orchestra.errors import OrchestraError

if TYPE_CHECKING:
    from orchestra.knowledge.models import Entry
    from orchestra.knowledge.store import KnowledgeStore

kb_app = typer.Typer(
    name="kb",
    help="The knowledge store: search, add, ingest a repository, prune, forget, hooks.",
    no_args_is_help=True,
)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", help="Store folder or URI (default: knowledge.path or ORCHESTRA_HOME)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ProjectOption = Annotated[str | None, typer.Option("--project", "-p", help="Project namespace.")]


def _open(store: str | None) -> KnowledgeStore:
    from orchestra.config.loader import load_config
    from orchestra.knowledge.store import KnowledgeStore

    return KnowledgeStore.open(store, load_config().knowledge)


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "project": entry.project,
        "team": entry.team,
        "title": entry.title,
        "text": entry.text,
        "tags": list(entry.tags),
        "source": {
            "file": entry.source.file,
            "start_line": entry.source.start_line,
            "end_line": entry.source.end_line,
            "run": entry.source.run,
            "agent": entry.source.agent,
            "session": entry.source.session,
            "origin": entry.source.origin,
        },
        "created_at": entry.created_at.isoformat(),
        "updated_at": entry.updated_at.isoformat(),
        "redactions": list(entry.redactions),
    }


@kb_app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="Only this kind.")] = None,
    project: ProjectOption = None,
    team: Annotated[str | None, typer.Option("--team", help="Only this team.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many results.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, vector or text (BM25).")] = "hybrid",
    store: StoreOption = None,
    json_out: JsonOption = False,
) -> None:
    """Search the knowledge store (hybrid vector + BM25 by default)."""
    try:
        hits = _open(store).search(query, project=project, kind=kind, k=limit, mode=mode, team=team)  # type: ignore[arg-type]
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if json_out:
        print_json([{"score": h.score, **_entry_json(h.entry)} for h in hits])
        return
    out = console()
    if not hits:
        out.print("no matching entries")
        return
    for rank, hit in enumerate(hits, start=1):
        e = hit.entry
        where = ""
        if e.source.file:
            lines = f":{e.source.start_line}-{e.source.end_line}" if e.source.start_line else ""
            where = f"  {e.source.file}{lines}"
        out.print(
            f"[bold]{rank}.[/] [cyan]{e.kind}[/] {escape(e.project)} "
            f"[dim]{hit.score:.4f} {e.id[:12]}[/]{escape(where)}",
            highlight=False,
            soft_wrap=True,
        )
        if e.title:
            out.print(f"   [bold]{escape(e.title)}[/]", highlight=False, soft_wrap=True)
        snippet = " ".join(e.text.split())
        out.print(
            f"   {escape(snippet[:300])}{'…' if len(snippet) > 300 else ''}",
            highlight=False,
            soft_wrap=True,
        )


@kb_app.command()
def add(
    text: Annotated[str, typer.Argument(help="The entry's text ('-' reads stdin).")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind", "-k", help="decision, convention, pattern, bug, api, code, doc or note."
        ),
    ] = "note",
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (default: this folder's name).")
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Team namespace.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    file: Annotated[
        str | None, typer.Option("--file", help="Source file the entry is about.")
    ] = None,
    store: StoreOption = None,
    json_out: JsonOption = False,
) -> None:
    """Store one entry (secrets are redacted, private keys refused)."""
    from orchestra.knowledge.models import Source

    body = sys.stdin.read() if text == "-" else text
    try:
        kb = _open(store)
        entry_id = kb.add(
            body,
            kind,
            project or Path.cwd().name,
            team=team,
            source=Source(file=file),
            tags=tag or (),
        )
        entry = kb.get(entry_id)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    redactions = list(entry.redactions) if entry else []
    if json_out:
        print_json({"id": entry_id, "redactions": redactions})
        return
    console().print(f"stored {entry_id}", highlight=False, soft_wrap=True)
    if redactions:
        console().print(f"redacted: {', '.join(redactions)}", highlight=False, soft_wrap=True)


@kb_app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="Repository or folder to index.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (default: the folder's name).")
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Team namespace.")] = None,
    store: StoreOption = None,
    json_out: JsonOption = False,
) -> None:
    """Index a repository: code by function/class, docs by heading; incremental."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestra.knowledge.ingest import ingest_repository

    try:
        kb = _open(store)
        with Progress(
            TextColumn("[bold]ingest[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=error_console(),
            disable=json_out,
            transient=True,
        ) as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, current: str) -> None:
                bar.update(task, completed=done, total=total, description=escape(current[-60:]))

            report = ingest_repository(kb, path, project=project, team=team, progress=progress)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    data = {k: v for k, v in report.__dict__.items() if k != "skipped_paths"}
    data["chunks_per_second"] = round(report.chunks_per_second, 2)
    if json_out:
        print_json(data)
        return
    console().print(
        f"{report.project}: {report.files_seen} files — {report.files_indexed} indexed, "
        f"{report.files_unchanged} unchanged, {report.files_deleted} deleted; "
        f"{report.chunks_added} chunks added, {report.chunks_removed} removed, "
        f"{report.chunks_refused} refused (secrets); skipped {report.skipped_binary} binary, "
        f"{report.skipped_huge} huge, {report.skipped_unreadable} unreadable "
        f"in {report.seconds:.1f}s",
        highlight=False,
        soft_wrap=True,
    )


@kb_app.command()
def stats(store: StoreOption = None, json_out: JsonOption = False) -> None:
    """Entries by kind and project, and the embedding model the vectors came from."""
    try:
        result = _open(store).stats()
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if json_out:
        print_json(result.__dict__)
        return
    from rich.table import Table

    out = console()
    out.print(f"store: {escape(result.location)}", highlight=False, soft_wrap=True)
    out.print(
        f"model: {result.embedding_model} ({result.dimension} dimensions)",
        highlight=False,
        soft_wrap=True,
    )
    out.print(
        f"entries: {result.total}; files tracked: {result.files_tracked}",
        highlight=False,
        soft_wrap=True,
    )
    for title, counts in (("kind", result.by_kind), ("project", result.by_project)):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("entries", justify="right")
        for name, count in sorted(counts.items()):
            table.add_row(escape(name), str(count))
        out.print(table)


@kb_app.command()
def prune(
    project: ProjectOption = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Prune only this kind.")] = None,
    days: Annotated[
        int | None, typer.Option("--days", help="Age limit for --kind, in days.")
    ] = None,
    store: StoreOption = None,
    json_out: JsonOption = False,
) -> None:
    """Delete entries older than their kind's retention (knowledge.retention_days)."""
    try:
        kb = _open(store)
        retention = None
        if kind is not None or days is not None:
            if kind is None or days is None:
                raise OrchestraError("--kind and --days go together", hint="pass both, or neither")
            retention = {kind: days}
        result = kb.prune(retention_days=retention, project=project)
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if json_out:
        print_json({"removed": result.removed, "total": result.total})
        return
    detail = ", ".join(f"{k}: {n}" for k, n in result.removed.items() if n) or "nothing"
    console().print(f"pruned {result.total} entries ({detail})", highlight=False, soft_wrap=True)


@kb_app.command()
def forget(
    source: Annotated[
        str | None, typer.Option("--source", help="file:PATH, run:ID, agent:NAME or session:ID.")
    ] = None,
    project: ProjectOption = None,
    store: StoreOption = None,
    json_out: JsonOption = False,
) -> None:
    """Delete every entry that came from one source."""
    fields = {"file", "run", "agent", "session"}
    try:
        if not source or ":" not in source or source.split(":", 1)[0] not in fields:
            raise OrchestraError(
                f"--source must be TYPE:VALUE, got {source!r}",
                hint="e.g. --source file:src/app.py, --source run:42, --source session:abc",
            )
        field, value = source.split(":", 1)
        removed = _open(store).delete_by_source(project=project, **{field: value})
    except OrchestraError as exc:
        raise _fail(exc) from exc
    if json_out:
        print_json({"removed": removed})
        return
    console().print(
        f"forgot {removed} entries from {escape(source)}", highlight=False, soft_wrap=True
    )


@kb_app.command()
def reembed(
    store: StoreOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Re-compute every vector with the configured embedding model."""
    try:
        kb = _open(store)
        recorded = kb.recorded_model()
        target = kb.embedder.name
        if recorded is None:
            console().print("the store is empty; nothing to re-embed")
            return
        if not yes:
            typer.confirm(
                f"re-embed all entries from {recorded[0]} to {target}?", abort=True, err=True
            )
        count = kb.reembed(
            progress=lambda done, total: error_console().print(
                f"re-embedded {done}/{total}", highlight=False
            )
        )
    except OrchestraError as exc:
        raise _fail(exc) from exc
    console().print(f"re-embedded {count} entries with {target}", highlight=False, soft_wrap=True)


@kb_app.command()
def hook(
    event: Annotated[str, typer.Argument(help="pre-compact or session-start.")],
) -> None:
    """Run a Claude Code hook (JSON on stdin); exits 0, or 1 on failure — never 2."""
    from orchestra.knowledge import run_hook

    raise typer.Exit(run_hook(event))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    app.add_typer(kb_app, name="kb")
