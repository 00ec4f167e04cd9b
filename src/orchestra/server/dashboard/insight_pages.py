"""The insight pages: the organisation's overview, a unit's drill-down, the KPIs with
their charts and definitions, a figure's rows, and the alerts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from orchestra.analytics import (
    INDICATORS,
    BudgetBurn,
    Figure,
    KPIReport,
    Period,
    budget_burn_report,
    definition,
    kpi_report,
    list_alerts,
    parse_period,
    row_records,
)
from orchestra.errors import OrchestraError
from orchestra.identity import NotAllowed
from orchestra.org import OrgTree
from orchestra.server.api.alerts import MANAGE_ALERTS
from orchestra.server.dashboard.charts import Point, bar_chart
from orchestra.server.dashboard.context import PageContext, link, segment
from orchestra.server.dashboard.render import Cell, Page, Table, row_tables, text_of


def _report(ctx: PageContext, unit: str | None, period: Period) -> KPIReport:
    return kpi_report(
        ctx.database, ctx.viewer.asker, unit=unit, period=period, settings=ctx.settings
    )


def _period(ctx: PageContext) -> Period:
    return parse_period(ctx.param("period"))


def _value(figure: Figure) -> str:
    if figure.value is None:
        return "unknown"
    return f"{text_of(round(figure.value, 3))} {figure.unit}"


def _kpi_table(report: KPIReport, unit: str | None) -> Table:
    table = Table(
        "kpis",
        f"KPIs of {report.scope.name} ({report.scope.kind}), {report.period.label}",
        ("KPI", "Value", "Unit", "Rows", "DORA band", "Definition"),
    )
    for name, fig in report.figures.items():
        band = report.bands.get(name)
        rows_href = link(f"/kpis/{segment(name)}", unit=unit, period=report.period.label)
        table.add(
            Cell(fig.definition.title, rows_href, name),
            Cell(text_of(fig.value), value=fig.value),
            fig.unit,
            Cell(str(fig.rows_total), rows_href, fig.rows_total),
            band.label if band is not None else "",
            fig.definition.formula,
        )
    return table


def _targets_table(report: KPIReport, unit: str | None) -> Table:
    table = Table(
        "targets",
        f"Targets of the {report.stage} stage",
        ("KPI", "Target", "Actual", "Met"),
    )
    for check in report.targets:
        met = "unknown" if check.met is None else ("yes" if check.met else "no")
        table.add(
            Cell(
                check.kpi,
                link(f"/kpis/{segment(check.kpi)}", unit=unit, period=report.period.label),
            ),
            check.target,
            check.actual,
            met,
        )
    return table


def _units_table(tree: OrgTree, parent: str | None, caption: str) -> Table:
    table = Table("units", caption, ("Unit", "Kind", "Parent", "Developers"))
    counts: dict[str, int] = {}
    for dev in tree.developers:
        if dev.unit:
            counts[dev.unit] = counts.get(dev.unit, 0) + 1
    units = tree.units if parent is None else tree.children(parent)
    for unit in units:
        if unit.kind == "guild":
            continue
        table.add(
            Cell(unit.name, link(f"/units/{segment(unit.name)}"), unit.name),
            unit.kind,
            unit.parent or tree.name,
            counts.get(unit.name, 0),
        )
    return table


def _live_alerts(ctx: PageContext, units: set[str] | None) -> Table:
    table = Table(
        "alerts", "Open and acknowledged alerts", ("Alert", "Unit", "Severity", "Summary")
    )
    for alert in list_alerts(ctx.database):
        if alert.state == "resolved" or (units is not None and alert.unit not in units):
            continue
        table.add(
            Cell(alert.id, link("/alerts"), alert.id), alert.unit, alert.severity, alert.summary
        )
    return table


def overview(ctx: PageContext) -> Page:
    """The organisation: its KPIs, stage targets, units and live alerts."""
    tree = ctx.tree()
    if tree is None:
        page = Page("Organisation overview", "overview")
        page.notes.append("No organisation is stored yet: run `orchestra org sync`.")
        return page
    report = _report(ctx, None, _period(ctx))
    page = Page(f"Organisation overview: {tree.name}", "overview")
    page.notes.append(
        f"Stage {report.stage}, {len(tree.developers)} developers; period {report.period.label}."
    )
    page.tables += [
        _kpi_table(report, None),
        _targets_table(report, None),
        _units_table(tree, None, "Units"),
        _live_alerts(ctx, None),
    ]
    return page


def unit(ctx: PageContext) -> Page:
    """A unit's (or a developer's) figures, the units below it and its developers."""
    name = ctx.path["unit"]
    report = _report(ctx, name, _period(ctx))
    tree = ctx.tree()
    page = Page(f"{report.scope.kind.capitalize()} {report.scope.name}", "overview")
    page.notes.append(f"Period {report.period.label}.")
    page.sections.append(
        {
            "heading": "Charts",
            "links": [("KPIs of this unit, week by week", link("/kpis", unit=name))],
        }
    )
    page.tables += [_kpi_table(report, name), _targets_table(report, name)]
    if tree is not None and report.scope.kind != "developer":
        page.tables.append(_units_table(tree, name, f"Units in {name}"))
        devs = Table("developers", f"Developers of {name}", ("Developer", "Unit", "Role"))
        for dev in sorted(tree.developers, key=lambda d: d.name):
            if dev.name in report.scope.developers:
                devs.add(
                    Cell(dev.name, link(f"/units/{segment(dev.name)}"), dev.name),
                    dev.unit,
                    dev.role,
                )
        page.tables.append(devs)
        page.tables.append(_live_alerts(ctx, {name}))
    return page


def _weeks(count: int, today: date) -> list[Period]:
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    spans = []
    for i in range(count, 0, -1):
        start, stop = end - timedelta(days=7 * i), end - timedelta(days=7 * (i - 1))
        spans.append(Period(start, stop, f"{start.date()}..{stop.date()}"))
    return spans


def kpis(ctx: PageContext) -> Page:
    """Every KPI of a unit, week by week: a chart, the definition, the rows."""
    name = ctx.param("unit")
    weeks = _weeks(ctx.weeks(), datetime.now(UTC).date())
    reports = [_report(ctx, name, week) for week in weeks]
    whole = _report(ctx, name, Period(weeks[0].start, weeks[-1].end, f"last {len(weeks)} weeks"))
    page = Page(f"KPIs of {whole.scope.name}", "kpis")
    page.notes.append(
        f"{len(weeks)} weeks to {weeks[-1].end.date()}; each bar links to the rows of its week."
    )
    for kpi in whole.figures:
        d = definition(kpi)
        points = [
            Point(
                r.period.start.strftime("%m-%d"),
                r.figures[kpi].value,
                link(f"/kpis/{segment(kpi)}", unit=name, period=r.period.label),
            )
            for r in reports
        ]
        fig = whole.figures[kpi]
        page.sections.append(
            {
                "heading": d.title,
                "figure": _value(fig),
                "band": (b.label if (b := whole.bands.get(kpi)) else None),
                "unknown": fig.unknown,
                "chart": bar_chart(f"{d.title} per week ({d.unit})", points, unit=d.unit),
                "caption": f"{d.title} per week, {weeks[0].start.date()} to {weeks[-1].end.date()}",
                "definition": d,
                "links": [
                    (
                        f"The {fig.rows_total} rows behind {_value(fig)}",
                        link(f"/kpis/{segment(kpi)}", unit=name, period=whole.period.label),
                    )
                ],
            }
        )
    whole_table = _kpi_table(whole, name)
    page.tables.append(whole_table)
    return page


def _period_of_rows(ctx: PageContext) -> Period:
    text = ctx.param("period")
    if text and text.startswith("last ") and text.endswith(" weeks"):
        count = text.split()[1]
        if count.isdigit() and 1 <= int(count) <= 26:
            spans = _weeks(int(count), datetime.now(UTC).date())
            return Period(spans[0].start, spans[-1].end, text)
    return parse_period(text)


def kpi_rows(ctx: PageContext) -> Page:
    """One figure and the rows it came from, read back from their tables."""
    kpi = definition(ctx.path["kpi"]).name
    name = ctx.param("unit")
    report = kpi_report(
        ctx.database,
        ctx.viewer.asker,
        unit=name,
        period=_period_of_rows(ctx),
        names=[kpi],
        settings=ctx.settings,
    )
    fig = report.figures[kpi]
    d = fig.definition
    page = Page(f"{d.title} of {report.scope.name}: rows", "kpis")
    page.sections.append(
        {
            "heading": f"{d.title}, {report.period.label}",
            "figure": _value(fig),
            "unknown": fig.unknown,
            "definition": d,
        }
    )
    if fig.rows_total > len(fig.rows):
        page.notes.append(f"Showing {len(fig.rows)} of {fig.rows_total} rows (the figure's cap).")
    detail = Table("detail", "How the figure was reached", ("Input", "Value"))
    for key, value in fig.detail.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        detail.add(key, shown if isinstance(shown, int | float) else str(shown))
    page.tables.append(detail)
    records = row_records(ctx.database, fig.rows)
    page.tables += row_tables(records)
    return page


def alerts(ctx: PageContext) -> Page:
    """Every alert; acknowledge and resolve buttons for those the viewer may change."""
    table = Table(
        "alerts",
        "Early-warning alerts, newest first",
        (
            "Alert",
            "Unit",
            "Severity",
            "State",
            "Indicator",
            "Summary",
            "Value",
            "Threshold",
            "Last seen",
            "Actions",
        ),
        actions=True,
    )
    for alert in list_alerts(ctx.database):
        actions: list[str] = []
        if alert.state != "resolved" and _may_manage(ctx, alert.unit):
            actions = ["acknowledge", "resolve"] if alert.state == "open" else ["resolve"]
        table.add(
            alert.id,
            alert.unit,
            alert.severity,
            alert.state,  # the fourth cell: the buttons' script updates it
            alert.indicator,
            alert.summary,
            alert.value,
            alert.threshold,
            alert.last_seen.isoformat(timespec="minutes"),
            Cell(alert.id, value=actions),
        )
    page = Page("Alerts", "alerts", tables=[table, _burns(ctx), _indicators(ctx)])
    page.notes.append("Leads of an alert's unit and admins may acknowledge and resolve it.")
    page.notes.append(
        "A finding needs a significant trend (Mann-Kendall); it is critical when the latest "
        "point is also past the threshold (a budget: its share of the cap spent). "
        "orchestra insight check --unit U records them."
    )
    return page


def _burn_cells(burn: BudgetBurn) -> tuple[str | float | None, ...]:
    if burn.rate_usd_per_day is None:
        unknown = f"unknown: {burn.why_unknown}"
        return unknown, "unknown", "unknown", "unknown"
    reaches = (
        burn.exhausts_at.isoformat(timespec="minutes")
        if burn.exhausts_at is not None
        else "not before the window ends"
    )
    return round(burn.rate_usd_per_day, 4), burn.trend, reaches, round(burn.projected_usd or 0, 4)


def _burns(ctx: PageContext) -> Table:
    """The burn of the budgets a check of ``unit`` (default: the organisation) watches."""
    unit = ctx.param("unit")
    table = Table(
        "budget-burn",
        f"Budget burn ({unit or 'organisation'}): spend so far against each cap",
        (
            "Budget",
            "Scope",
            "Subject",
            "Window ends",
            "Cap USD",
            "Spent USD",
            "Used",
            "Rate USD/day",
            "Trend",
            "Reaches the cap",
            "Projected USD at window end",
        ),
    )
    burns = budget_burn_report(ctx.database, ctx.viewer.asker, unit=unit, settings=ctx.settings)
    for burn in burns:
        ends = burn.window_end.isoformat(timespec="minutes") if burn.window_end else "run"
        used = f"{burn.used:.1%}" if burn.used is not None else "unknown"
        table.add(
            burn.budget,
            burn.scope,
            burn.subject,
            ends,
            burn.cap_usd,
            round(burn.spent_usd, 4),
            used,
            *_burn_cells(burn),
        )
    return table


def _indicators(ctx: PageContext) -> Table:
    """The early-warning indicators: how each is computed and the threshold in force."""
    table = Table(
        "indicators",
        "Early-warning indicators and their thresholds",
        ("Indicator", "Title", "How", "Unit", "Worse when", "Threshold"),
    )
    thresholds = ctx.settings.warnings.thresholds
    for i in INDICATORS:
        threshold = thresholds.get(i.name, i.default_threshold)
        table.add(
            i.name, i.title, i.how, i.unit, i.worse_when, "none" if threshold is None else threshold
        )
    return table


def _may_manage(ctx: PageContext, unit_name: str) -> bool:
    try:
        path = ctx.api.directory.unit_path(unit_name)
        ctx.api.authorizer.require(ctx.viewer.identity, MANAGE_ALERTS, path)
    except (NotAllowed, OrchestraError):
        return False
    return True


__all__ = ["alerts", "kpi_rows", "kpis", "overview", "unit"]
