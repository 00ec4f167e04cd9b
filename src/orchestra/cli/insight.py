"""CLI: orchestra insight ... (KPIs, drill-down, imports of git history and payloads)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

from orchestra.analytics import (
    DEFINITIONS,
    Asker,
    InsightSettings,
    KPIReport,
    definition,
    import_git_history,
    import_payload_file,
    kpi_report,
    link_all,
    parse_period,
)
from orchestra.cli.output import console, fail, print_json
from orchestra.config import default_database_url, load_config
from orchestra.errors import OrchestraError
from orchestra.org import load_org
from orchestra.store import Database, open_database

insight_app = typer.Typer(help="KPIs computed from what was recorded.", no_args_is_help=True)
import_app = typer.Typer(help="Import git history and webhook payloads.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="orchestra.yaml to use (default: the nearest).")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Database URL (default: $ORCHESTRA_DATABASE_URL)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
UnitOption = Annotated[
    str | None, typer.Option("--unit", help="Division, tribe, squad or developer (default: all).")
]
PeriodOption = Annotated[
    str | None,
    typer.Option("--period", help="2026, 2026-Q4, 2026-11, 2026-11-01..2026-12-01, last-30d."),
]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Who asks (default: $ORCHESTRA_DEVELOPER, else your login)."),
]


def _open(database: str | None) -> Database:
    return open_database(database or default_database_url())


def _asker(db: Database, name: str | None) -> Asker:
    """The asking developer with their role and unit from the stored organisation."""
    who = name or os.environ.get("ORCHESTRA_DEVELOPER") or getpass.getuser()
    tree = load_org(db)
    dev = next((d for d in tree.developers if d.name == who), None) if tree else None
    if dev is None:
        return Asker(who, frozenset())
    return Asker(who, frozenset({dev.role}), dev.unit)


def _report(
    config_path: Path | None,
    database: str | None,
    unit: str | None,
    period: str | None,
    who: str | None,
    names: list[str] | None,
) -> KPIReport:
    settings = InsightSettings.from_config(load_config(config_path).insight)
    db = _open(database)
    try:
        return kpi_report(
            db,
            _asker(db, who),
            unit=unit,
            period=parse_period(period),
            names=names,
            settings=settings,
        )
    finally:
        db.dispose()


def _show_value(value: float | None, unit: str) -> str:
    if value is None:
        return "unknown"
    return f"{value:.1%}" if unit == "ratio" else f"{value:.2f} {unit}"


def _verdict(met: bool | None) -> str:
    return "unknown" if met is None else "met" if met else "missed"


@insight_app.command("kpis")
def kpis(
    unit: UnitOption = None,
    period: PeriodOption = None,
    who: AsOption = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Every KPI of a unit for a period, with its band and the stage's target."""
    try:
        report = _report(config_path, database, unit, period, who, None)
    except OrchestraError as exc:
        raise fail(exc) from exc
    if json_out:
        print_json(report.to_dict())
        return
    from rich.table import Table

    targets = {t.kpi: t for t in report.targets}
    table = Table(
        title=f"{report.scope.kind} {report.scope.name} · {report.period.label} · "
        f"stage {report.stage}"
    )
    for column in ("KPI", "value", "rows", "band", "target"):
        table.add_column(column)
    for name, fig in report.figures.items():
        band = report.bands.get(name)
        target = targets.get(name)
        table.add_row(
            name,
            _show_value(fig.value, fig.unit),
            str(fig.rows_total),
            f"{band.band} ({band.version})" if band else "-",
            "-" if target is None else f"{target.target:g} {_verdict(target.met)}",
        )
    console().print(table)


@insight_app.command("show")
def show(
    kpi: Annotated[str, typer.Argument(help="The KPI's name.")],
    drill_down: Annotated[bool, typer.Option("--drill-down", help="List its rows.")] = False,
    unit: UnitOption = None,
    period: PeriodOption = None,
    who: AsOption = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """One KPI: its definition, value and (with --drill-down) the rows it came from."""
    try:
        name = definition(kpi).name
        report = _report(config_path, database, unit, period, who, [name])
    except OrchestraError as exc:
        raise fail(exc) from exc
    data = report.to_dict()["kpis"][name]
    if not drill_down:
        data.pop("rows")
    if json_out:
        print_json(data)
        return
    out = console()
    d = data["definition"]
    out.print(f"{d['title']}: {_show_value(data['value'], data['unit'])}", markup=False)
    out.print(f"formula: {d['formula']}", markup=False)
    out.print(f"inputs: {'; '.join(d['inputs'])}", markup=False)
    out.print(f"unknown when: {d['unknown_when']}", markup=False)
    if drill_down:
        out.print(f"rows ({data['rows_total']}):", markup=False)
        for ref in data["rows"]:
            out.print(f"  {ref}", markup=False)


@insight_app.command("definitions")
def definitions(json_out: JsonOption = False) -> None:
    """Every KPI's definition (formula, inputs, unit, when unknown)."""
    rows = [d.__dict__ for d in DEFINITIONS]
    if json_out:
        print_json(rows)
        return
    for d in DEFINITIONS:
        console().print(f"{d.name} ({d.unit}): {d.formula}", markup=False)


@import_app.command("git")
def import_git(
    repo: Annotated[str, typer.Argument(help="The repository's name (owner/name).")],
    path: Annotated[Path, typer.Argument(help="Its clone on this machine.")],
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Import a repository's commits since the last import, then derive links."""
    try:
        db = _open(database)
        try:
            result = import_git_history(db, repo, path)
            links = link_all(db)
        finally:
            db.dispose()
    except OrchestraError as exc:
        raise fail(exc) from exc
    if json_out:
        print_json(
            {"repo": repo, "commits": result.commits, "merges": result.merges, "links": links}
        )
        return
    console().print(
        f"{repo}: {result.commits} new commits ({result.merges} merges), {links} new links",
        markup=False,
    )


@import_app.command("payloads")
def import_payloads(
    source: Annotated[str, typer.Argument(help="github or gitlab.")],
    event: Annotated[
        str,
        typer.Argument(
            help="pull_request, deployment_status, issues; "
            "Merge Request Hook, Deployment Hook, Issue Hook."
        ),
    ],
    files: Annotated[list[Path], typer.Argument(help="JSON files: one payload or a list.")],
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Import webhook payloads saved as JSON (idempotent: a payload is taken in once)."""
    try:
        labels = InsightSettings.from_config(load_config(config_path).insight).labels
        db = _open(database)
        try:
            done = [d for f in files for d in import_payload_file(db, source, event, f, labels)]
        finally:
            db.dispose()
    except OrchestraError as exc:
        raise fail(exc) from exc
    new = [d for d in done if not d.duplicate]
    summary = {"payloads": len(done), "new": len(new), "records": sum(d.records for d in new)}
    if json_out:
        print_json(summary)
        return
    console().print(
        f"{summary['payloads']} payloads, {summary['new']} new, {summary['records']} records",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``orchestra insight`` to the root application."""
    insight_app.add_typer(import_app, name="import")
    app.add_typer(insight_app, name="insight")
