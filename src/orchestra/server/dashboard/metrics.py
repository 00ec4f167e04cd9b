"""``GET /metrics/insight``: the KPIs of the organisation and of every unit as Prometheus
gauges, and the alerts by state and severity.

Developer-level figures are left out (a scrape would show them to whoever reads the
metrics store). An unknown figure is absent, not 0: ``orchestra_insight_kpi_known`` says
which are. The caller needs ``read_insight`` (an admin, or a service key scoped to it).
"""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from orchestra.analytics import (
    Asker,
    InsightSettings,
    Period,
    kpi_report,
    list_alerts,
    parse_period,
)
from orchestra.errors import OrchestraError
from orchestra.org import load_org
from orchestra.server.api import ApiContext
from orchestra.server.api.alerts import READ_INSIGHT
from orchestra.server.api.endpoint import status_of
from orchestra.store import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_ASKER = Asker("metrics", frozenset({"admin"}))
"""The library's principal for a scrape; developer scopes are never asked for."""


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(db: Database, period: Period, settings: InsightSettings) -> str:
    """The text exposition of the units' KPIs over ``period`` and of the alerts."""
    tree = load_org(db)
    lines = [
        "# HELP orchestra_insight_kpi A unit's KPI over the period (see docs/insight.md).",
        "# TYPE orchestra_insight_kpi gauge",
    ]
    known = [
        "# HELP orchestra_insight_kpi_known 1 when the KPI could be computed, 0 when unknown.",
        "# TYPE orchestra_insight_kpi_known gauge",
    ]
    units = ([None] + [u.name for u in tree.units if u.kind != "guild"]) if tree else []
    for unit in units:
        report = kpi_report(db, METRICS_ASKER, unit=unit, period=period, settings=settings)
        scope = report.scope
        for name, fig in report.figures.items():
            labels = (
                f'kpi="{name}",unit="{_label(scope.name)}",kind="{scope.kind}",'
                f'measure="{_label(fig.unit)}",period="{_label(period.label)}"'
            )
            known.append(f"orchestra_insight_kpi_known{{{labels}}} {int(fig.value is not None)}")
            if fig.value is not None:
                lines.append(f"orchestra_insight_kpi{{{labels}}} {fig.value!r}")
    counts: dict[tuple[str, str], int] = {}
    for alert in list_alerts(db):
        key = (alert.state, alert.severity)
        counts[key] = counts.get(key, 0) + 1
    alerts = [
        "# HELP orchestra_insight_alerts Early-warning alerts by state and severity.",
        "# TYPE orchestra_insight_alerts gauge",
        *(
            f'orchestra_insight_alerts{{state="{s}",severity="{v}"}} {n}'
            for (s, v), n in sorted(counts.items())
        ),
    ]
    return "\n".join([*lines, *known, *alerts]) + "\n"


def metrics_routes(api: ApiContext) -> Mount:
    """``/metrics/insight`` (``/metrics`` itself is the gateway's)."""

    async def insight_metrics(request: Request) -> Response:
        try:
            identity = await api.authenticate(request.headers, request.cookies)
            api.authorizer.require(identity, READ_INSIGHT, None)
            period = parse_period(request.query_params.get("period") or "last-30d")
            settings = InsightSettings.from_config(api.current_config.insight)
            db = api.orchestra().database
            text = await anyio.to_thread.run_sync(exposition, db, period, settings)
        except OrchestraError as exc:
            return PlainTextResponse(f"{exc.message}\n{exc.hint or ''}\n", status_of(exc))
        return Response(text, media_type=CONTENT_TYPE)

    return Mount("/metrics", routes=[Route("/insight", insight_metrics, methods=["GET"])])
