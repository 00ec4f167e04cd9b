"""CLI: orchestra insight ... (KPIs, drill-down, imports of git history and payloads)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

from orchestra.accounting import SecretBox, SecretStore
from orchestra.analytics import (
    DEFINITIONS,
    Asker,
    Escalator,
    InsightSettings,
    KPIReport,
    acknowledge,
    alert_history,
    check_warnings,
    definition,
    import_git_history,
    import_payload_file,
    kpi_report,
    link_all,
    list_alerts,
    parse_period,
    principal_in,
    resolve,
)
from orchestra.cli.output import console, fail, print_json
from orchestra.config import OrchestraConfig, default_database_url, load_config
from orchestra.errors import OrchestraError
from orchestra.org import load_org
from orchestra.store import Database, open_database

insight_app = typer.Typer(help="KPIs computed from what was recorded.", no_args_is_help=True)
import_app = typer.Typer(help="Import git history and webhook payloads.", no_args_is_help=True)
alerts_app = typer.Typer(help="Early-warning alerts.", no_args_is_help=True)

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
    return principal_in(load_org(db), who)


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


def _escalator(config: OrchestraConfig, db: Database) -> Escalator | None:
    tree = load_org(db)
    section = config.insight
    if tree is None or not section.escalation:
        return None
    secrets = SecretStore(SecretBox.from_home())
    return Escalator(dict(section.escalation), section.smtp, tree, password=secrets.get)


@insight_app.command("check")
def check(
    unit: UnitOption = None,
    config_path: ConfigOption = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Evaluate the early-warning indicators of a unit; record and escalate what they find."""
    try:
        config = load_config(config_path)
        db = _open(database)
        escalator = _escalator(config, db)
        try:
            alerts = check_warnings(
                db,
                unit=unit,
                settings=InsightSettings.from_config(config.insight),
                send=escalator.send if escalator is not None else None,
            )
        finally:
            if escalator is not None:
                escalator.close()
            db.dispose()
    except OrchestraError as exc:
        raise fail(exc) from exc
    if json_out:
        print_json([a.to_dict() for a in alerts])
        return
    for alert in alerts:
        console().print(f"{alert.id} [{alert.severity}] {alert.summary}", markup=False)
    if not alerts:
        console().print("no warnings", markup=False)


@alerts_app.command("list")
def alerts_list(
    state: Annotated[
        str | None, typer.Option("--state", help="open, acknowledged or resolved.")
    ] = None,
    database: DatabaseOption = None,
    json_out: JsonOption = False,
) -> None:
    """Alerts, newest first."""
    db = _open(database)
    try:
        alerts = list_alerts(db, state=state)
    finally:
        db.dispose()
    if json_out:
        print_json([a.to_dict() for a in alerts])
        return
    for a in alerts:
        console().print(f"{a.id} {a.state} [{a.severity}] {a.summary}", markup=False)


def _alert_action(action: str, alert_id: str, who: str | None, database: str | None) -> None:
    actor = who or os.environ.get("ORCHESTRA_DEVELOPER") or getpass.getuser()
    try:
        db = _open(database)
        try:
            alert = (acknowledge if action == "ack" else resolve)(db, alert_id, actor)
        finally:
            db.dispose()
    except OrchestraError as exc:
        raise fail(exc) from exc
    console().print(f"{alert.id} {alert.state} by {actor}", markup=False)


AlertId = Annotated[str, typer.Argument(help="The alert's id (`alerts list`).")]


@alerts_app.command("ack")
def alerts_ack(alert_id: AlertId, who: AsOption = None, database: DatabaseOption = None) -> None:
    """Acknowledge an alert: someone handles it (no more escalation as it worsens)."""
    _alert_action("ack", alert_id, who, database)


@alerts_app.command("resolve")
def alerts_resolve(
    alert_id: AlertId, who: AsOption = None, database: DatabaseOption = None
) -> None:
    """Resolve an alert by hand."""
    _alert_action("resolve", alert_id, who, database)


@alerts_app.command("history")
def alerts_history(
    alert_id: AlertId, database: DatabaseOption = None, json_out: JsonOption = False
) -> None:
    """Every event of an alert: opened, escalated, seen, acknowledged, resolved."""
    try:
        db = _open(database)
        try:
            events = alert_history(db, alert_id)
        finally:
            db.dispose()
    except OrchestraError as exc:
        raise fail(exc) from exc
    if json_out:
        print_json(events)
        return
    for e in events:
        console().print(
            f"{e['at']} {e['event']} {e['actor'] or ''} {e['detail']}".rstrip(), markup=False
        )


def register(app: typer.Typer) -> None:
    """Add ``orchestra insight`` to the root application."""
    insight_app.add_typer(import_app, name="import")
    insight_app.add_typer(alerts_app, name="alerts")
    app.add_typer(insight_app, name="insight")
