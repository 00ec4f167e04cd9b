"""The dashboard's routes: the pages under ``/dashboard`` and their static files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlencode

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from orchestra.errors import OrchestraError
from orchestra.identity import ANY_UNIT, NotAuthenticated, register_action
from orchestra.server.api import ApiContext
from orchestra.server.api.alerts import READ_INSIGHT
from orchestra.server.api.endpoint import status_of
from orchestra.server.dashboard import (
    assessment_pages,
    experiment_pages,
    governance_pages,
    insight_pages,
    survey_answer,
    value_pages,
)
from orchestra.server.dashboard.context import PageContext, Viewer
from orchestra.server.dashboard.render import HEADERS, Page, error_page, export, html

READ_REGISTRY = register_action("read_registry", frozenset({"lead", "developer", "viewer"})).name
"""Listing the agent registry (every role)."""

Builder = Callable[[PageContext], Page]


@dataclass(frozen=True)
class DashboardPage:
    """A page: its navigation entry, its path under ``/dashboard``, the action it needs
    and what builds it. Other parts add pages by passing more of these to
    :func:`dashboard_routes`."""

    key: str
    label: str
    path: str
    action: str
    build: Builder
    in_nav: bool = True


PAGES: tuple[DashboardPage, ...] = (
    DashboardPage("overview", "Overview", "/", READ_INSIGHT, insight_pages.overview),
    DashboardPage("unit", "Unit", "/units/{unit:path}", READ_INSIGHT, insight_pages.unit, False),
    DashboardPage("kpis", "KPIs", "/kpis", READ_INSIGHT, insight_pages.kpis),
    DashboardPage("rows", "Rows", "/kpis/{kpi}", READ_INSIGHT, insight_pages.kpi_rows, False),
    DashboardPage("spend", "Spend", "/spend", "read_spend", governance_pages.spend),
    DashboardPage("alerts", "Alerts", "/alerts", READ_INSIGHT, insight_pages.alerts),
    DashboardPage("maturity", "Maturity", "/maturity", READ_INSIGHT, assessment_pages.maturity),
    DashboardPage(
        "signal", "Signal", "/maturity/{signal}", READ_INSIGHT, assessment_pages.signal_rows, False
    ),
    DashboardPage("plan", "Transition plan", "/plan", READ_INSIGHT, assessment_pages.plan),
    DashboardPage("roi", "ROI", "/roi", READ_INSIGHT, value_pages.roi),
    DashboardPage("surveys", "Surveys", "/surveys", READ_INSIGHT, value_pages.surveys),
    DashboardPage("survey", "Survey", "/surveys/{round}", READ_INSIGHT, value_pages.survey, False),
    DashboardPage(
        "experiments", "Experiments", "/experiments", READ_INSIGHT, experiment_pages.experiments
    ),
    DashboardPage(
        "experiment",
        "Experiment",
        "/experiments/{name}",
        READ_INSIGHT,
        experiment_pages.experiment,
        False,
    ),
    DashboardPage("registry", "Registry", "/registry", READ_REGISTRY, governance_pages.registry),
    DashboardPage("policies", "Policies", "/policies", "read_policies", governance_pages.policies),
)
"""The built-in pages, in navigation order."""

STATIC = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return Response("not found", 404, media_type="text/plain")
    body = resources.files("orchestra.server.dashboard").joinpath("static", name).read_bytes()
    return Response(
        body, media_type=STATIC[name], headers={**HEADERS, "cache-control": "max-age=300"}
    )


def dashboard_routes(api: ApiContext, extra: Sequence[DashboardPage] = ()) -> Mount:
    """The dashboard's pages (``PAGES`` and ``extra``) mounted at ``/dashboard``."""
    pages = [*PAGES, *extra]
    nav = [(p.key, p.label, "/dashboard" + p.path) for p in pages if p.in_nav]

    def serve(page: DashboardPage) -> Callable[[Request], object]:
        async def endpoint(request: Request) -> Response:
            return await _serve(api, page, nav, request)

        endpoint.__name__ = f"dashboard_{page.key}"
        return endpoint

    routes = [Route(p.path, serve(p), methods=["GET"]) for p in pages]

    async def answer(request: Request) -> Response:
        return await survey_answer.answer(api, nav, request)

    routes.append(Route("/surveys/{round}/answer", answer, methods=["POST"]))
    routes.append(Route("/static/{name}", _static, methods=["GET"]))
    return Mount("/dashboard", routes=routes)


async def _serve(
    api: ApiContext, page: DashboardPage, nav: list[tuple[str, str, str]], request: Request
) -> Response:
    who = "nobody"
    try:
        identity = await api.authenticate(request.headers, request.cookies)
        api.authorizer.require(identity, page.action, ANY_UNIT)
        api.orchestra()  # opened here, on the event loop, so two first requests open it once
        viewer = Viewer.of(identity)
        who = viewer.name
        ctx = PageContext(api, viewer, dict(request.query_params), dict(request.path_params))
        built = await anyio.to_thread.run_sync(page.build, ctx)
    except NotAuthenticated as exc:
        if api.oidc is not None:
            return RedirectResponse(
                f"/api/v1/auth/login?{urlencode({'next': request.url.path})}", 303
            )
        return error_page(401, exc.message, exc.hint, who, nav)
    except OrchestraError as exc:
        return error_page(status_of(exc), exc.message, exc.hint, who, nav)
    fmt = request.query_params.get("format")
    if fmt in ("csv", "json"):
        return export(built, fmt, request.query_params.get("table"))
    return html(built, request.url, who, nav)
