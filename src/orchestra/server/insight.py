"""REST routes of insight: GitHub's and GitLab's webhooks, and the KPIs; and how every
``/api/insight`` route knows who asks (:func:`insight_asker`).

``POST /api/insight/webhooks/github`` and ``/api/insight/webhooks/gitlab`` check the
signature (401), read the payload (400), store its records once per delivery id and derive
links. The secrets are stored encrypted (``orchestra secrets set NAME``) and named in
``insight.github_secret`` / ``insight.gitlab_secret``; a route with no secret configured
answers 404, so an unconfigured server takes no unsigned data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from orchestra.analytics import (
    AnalyticsError,
    InsightSettings,
    Principal,
    kpi_report,
    link_all,
    parse_json,
    parse_period,
    receive,
    verify_github,
    verify_gitlab,
)
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import OrchestraError
from orchestra.identity import ANY_UNIT, NotAuthenticated
from orchestra.server.api import ApiContext
from orchestra.server.api.alerts import READ_INSIGHT
from orchestra.server.api.endpoint import status_of
from orchestra.server.api.insight import asker_of
from orchestra.store import Database

MAX_BODY = 5 * 1024 * 1024
"""GitHub caps payloads at 25 MB; the events read here are far smaller."""

SecretLookup = Callable[[str], str]
"""Secret name -> its decrypted value (``SecretStore(...).get``)."""


def _error(exc: OrchestraError) -> JSONResponse:
    """An error as JSON, with its status (an analytics error's own; 401 unauthenticated,
    403 not allowed) and hint."""
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status_of(exc))


def insight_routes(config: OrchestraConfig, db: Database, secrets: SecretLookup) -> list[BaseRoute]:
    """The webhook routes, for ``build_app(extra_routes=...)``."""
    section = config.insight
    settings = InsightSettings.from_config(section)

    async def handle(request: Request, source: str, secret_name: str | None) -> JSONResponse:
        if secret_name is None:
            return JSONResponse({"error": f"no {source} webhook is configured"}, 404)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "payload too large"}, 413)
        try:
            secret = await asyncio.to_thread(secrets, secret_name)
            if source == "github":
                verify_github(secret, body, request.headers.get("x-hub-signature-256"))
                event = request.headers.get("x-github-event", "")
                delivery_id = request.headers.get("x-github-delivery", "")
            else:
                verify_gitlab(secret, request.headers.get("x-gitlab-token"))
                event = request.headers.get("x-gitlab-event", "")
                delivery_id = request.headers.get("x-gitlab-event-uuid", "")
            payload = parse_json(body)
            delivery = await asyncio.to_thread(
                receive,
                db,
                source=source,
                event=event,
                delivery_id=delivery_id,
                payload=payload,
                labels=settings.labels,
            )
            if delivery.records and not delivery.duplicate:
                await asyncio.to_thread(link_all, db)
        except AnalyticsError as exc:
            return _error(exc)
        return JSONResponse(
            {
                "delivery": delivery.delivery_id,
                "event": delivery.event,
                "records": delivery.records,
                "duplicate": delivery.duplicate,
            },
            status_code=200 if delivery.duplicate else 202,
        )

    async def github(request: Request) -> JSONResponse:
        return await handle(request, "github", section.github_secret)

    async def gitlab(request: Request) -> JSONResponse:
        return await handle(request, "gitlab", section.gitlab_secret)

    return [
        Route("/api/insight/webhooks/github", github, methods=["POST"]),
        Route("/api/insight/webhooks/gitlab", gitlab, methods=["POST"]),
    ]


async def insight_asker(
    request: Request,
    action: str = READ_INSIGHT,
    *,
    key: str | None = None,
    cookies: bool = True,
) -> Principal:
    """Who asks, resolved as the dashboard and the REST API resolve it: the web login's
    session cookie, an OpenID Connect bearer token or a gateway key (``x-api-key`` or
    ``Authorization: Bearer``; ``key``: one read from a form instead), authenticated by
    the server's :class:`~orchestra.server.api.ApiContext`, allowed ``action`` by its
    authoriser (roles, then the Cedar policies), and turned into insight's principal by
    :func:`~orchestra.server.api.insight.asker_of` (as the dashboard's ``Viewer``).
    ``cookies=False`` ignores the session (a route another site's form could post to).

    Raises :class:`~orchestra.identity.NotAuthenticated` (401) without a usable credential
    and :class:`~orchestra.identity.NotAllowed` (403) when the role may not take ``action``.
    """
    api: ApiContext | None = getattr(request.app.state, "api", None)
    if api is None:
        raise NotAuthenticated("this server authenticates no one (it serves no API)")
    headers: Mapping[str, str] = {"x-api-key": key} if key is not None else request.headers
    identity = await api.authenticate(headers, request.cookies if cookies else {})
    api.authorizer.require(identity, action, ANY_UNIT)
    return asker_of(identity)


def kpi_routes(config: OrchestraConfig, database: Callable[[], Database]) -> list[BaseRoute]:
    """``GET /api/insight/kpis?unit=&period=&kpi=a,b``: a unit's figures with their
    definitions and drill-down rows, for anyone the dashboard would let in
    (:func:`insight_asker`). A developer's own figures: that developer, their leads,
    admins (403 otherwise)."""
    settings = InsightSettings.from_config(config.insight)

    async def kpis(request: Request) -> JSONResponse:
        try:
            principal = await insight_asker(request)
        except OrchestraError as exc:
            return _error(exc)
        params = request.query_params
        names = [n for n in (params.get("kpi") or "").split(",") if n] or None
        try:
            period = parse_period(params.get("period"))
            report = await asyncio.to_thread(
                kpi_report,
                database(),
                principal,
                unit=params.get("unit"),
                period=period,
                names=names,
                settings=settings,
            )
        except AnalyticsError as exc:
            return _error(exc)
        return JSONResponse(report.to_dict())

    return [Route("/api/insight/kpis", kpis, methods=["GET"])]
