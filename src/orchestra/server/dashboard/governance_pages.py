"""The spend page and the governance lists: the agent registry and the policies."""

from __future__ import annotations

from typing import Any

from orchestra.accounting import spend_report
from orchestra.identity import ACTIONS
from orchestra.registry import AgentRegistry
from orchestra.server.api import PolicyAuthorizer
from orchestra.server.dashboard.charts import Point, bar_chart
from orchestra.server.dashboard.context import PageContext, link, segment
from orchestra.server.dashboard.render import Cell, Page, Table

SPEND_PERIODS = ("today", "week", "month", "all")


def _spend_table(report: Any, table_id: str, caption: str, first: str) -> Table:
    table = Table(
        table_id, caption, (first, "Requests", "Input tokens", "Output tokens", "Cost (USD)")
    )
    for row in sorted(report.rows, key=lambda r: r.cost_usd, reverse=True):
        group = row.group or "(none)"
        cell: Cell | str = group
        if first == "Developer" and row.group:
            cell = Cell(group, link(f"/units/{segment(group)}"), group)
        table.add(cell, row.requests, row.input_tokens, row.output_tokens, float(row.cost_usd))
    return table


def spend(ctx: PageContext) -> Page:
    """Spend from the ledger by developer, team, model and day. Admins see everyone's;
    others their own calls."""
    period = ctx.param("period", "month") or "month"
    if period not in SPEND_PERIODS:
        period = "month"
    developer = None if ctx.viewer.is_admin else ctx.viewer.name
    db = ctx.database
    by = {
        key: spend_report(db, by=key, period=period, developer=developer)
        for key in ("developer", "team", "model", "day")
    }
    whose = "everyone's" if developer is None else f"{developer}'s own"
    page = Page(f"Spend ({period})", "spend")
    page.notes.append(
        f"From the gateway's ledger: {whose} calls, {by['day'].total_requests} requests, "
        f"${float(by['day'].total_usd):,.4f}."
    )
    days = sorted(by["day"].rows, key=lambda r: r.group or "")
    points = [Point((r.group or "")[5:], float(r.cost_usd)) for r in days]
    page.sections.append(
        {
            "heading": "Cost per day",
            "chart": bar_chart(f"Cost per day, {period} (USD)", points, unit="USD"),
            "caption": "Ledger cost per UTC day; the table below has the same figures.",
            "links": [(p, link("/spend", period=p)) for p in SPEND_PERIODS if p != period],
        }
    )
    page.tables += [
        _spend_table(by["developer"], "by-developer", "Spend by developer", "Developer"),
        _spend_table(by["team"], "by-team", "Spend by squad", "Squad"),
        _spend_table(by["model"], "by-model", "Spend by model", "Model"),
        _spend_table(by["day"], "by-day", "Spend by day", "Day"),
    ]
    return page


def registry(ctx: PageContext) -> Page:
    """The agent registry: every agent, the version served and the newest."""
    agents = AgentRegistry(ctx.database)
    try:
        summaries = agents.summaries()
    finally:
        agents.close()
    table = Table(
        "agents",
        "Agents in the registry",
        ("Agent", "Served", "Newest", "Newest state", "Category", "Publisher", "Warning"),
    )
    for s in summaries:
        table.add(
            s.agent,
            s.served.label if s.served else "nothing servable",
            s.latest.label,
            s.latest.state,
            s.latest.category,
            s.latest.publisher,
            s.warning or "",
        )
    page = Page("Agent registry", "registry", tables=[table])
    page.notes.append("Read-only; publish and approve with `orchestra registry`.")
    return page


def policies(ctx: PageContext) -> Page:
    """The policies in force and the role table of the actions."""
    page = Page("Policies", "policies")
    authorizer = ctx.api.authorizer
    if isinstance(authorizer, PolicyAuthorizer):
        bundle = authorizer.engine().bundle
        page.notes.append(f"Policy set version {bundle.version}.")
        table = Table("policies", "Policies in force", ("Policy", "File", "Line"))
        for pid, text in sorted(bundle.sources.items()):
            table.add(pid, text.file, text.line)
        page.tables.append(table)
    else:
        page.notes.append("This server decides by roles only (no policy set).")
    roles = Table(
        "actions",
        "Actions and the roles that may take them",
        ("Action", "Roles", "Unit-scoped", "Changes state"),
    )
    for name, action in sorted(ACTIONS.items()):
        roles.add(
            name,
            ", ".join(sorted(action.roles)),
            "yes" if action.unit_scoped else "no",
            "yes" if action.mutating else "no",
        )
    page.tables.append(roles)
    return page
