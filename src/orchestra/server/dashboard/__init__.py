"""The dashboard: server-rendered pages under ``/dashboard`` over insight, spend and the
governance lists, served by the same ASGI app as the gateway and the REST API.

Pages are Jinja2 templates (autoescaped) with charts drawn on the server as SVG
(:mod:`.charts`), one stylesheet and one small script served from this package — nothing
from a CDN. Access is the REST API's: the web login's session cookie or a gateway key
(``Authorization: Bearer``); each page checks one action. Every table exports as CSV or
JSON (``?format=csv&table=<id>``). See docs/dashboard.md.
"""

from orchestra.server.dashboard.metrics import metrics_routes
from orchestra.server.dashboard.routes import PAGES, READ_REGISTRY, DashboardPage, dashboard_routes
from orchestra.server.dashboard.survey_answer import ANSWER_SURVEY

__all__ = [
    "ANSWER_SURVEY",
    "PAGES",
    "READ_REGISTRY",
    "DashboardPage",
    "dashboard_routes",
    "metrics_routes",
]
