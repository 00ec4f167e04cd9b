"""REST routes of insight: GitHub's and GitLab's webhooks, and the KPIs.

``POST /api/insight/webhooks/github`` and ``/api/insight/webhooks/gitlab`` check the
signature (401), read the payload (400), store its records once per delivery id and derive
links. The secrets are stored encrypted (``orchestra secrets set NAME``) and named in
``insight.github_secret`` / ``insight.gitlab_secret``; a route with no secret configured
answers 404, so an unconfigured server takes no unsigned data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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
from orchestra.store import Database

MAX_BODY = 5 * 1024 * 1024
"""GitHub caps payloads at 25 MB; the events read here are far smaller."""

SecretLookup = Callable[[str], str]
"""Secret name -> its decrypted value (``SecretStore(...).get``)."""


def _error(exc: AnalyticsError) -> JSONResponse:
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=exc.status)


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


KeyPrincipal = Callable[[str], Principal | None]
"""A gateway key's secret -> the principal it stands for, or ``None`` (not a usable key)."""


def _key_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def kpi_routes(
    config: OrchestraConfig, database: Callable[[], Database], principal_of: KeyPrincipal
) -> list[BaseRoute]:
    """``GET /api/insight/kpis?unit=&period=&kpi=a,b``: a unit's figures with their
    definitions and drill-down rows, for the holder of a gateway key (until the governance
    work's roles and SSO land). A developer's own figures: that developer, their leads,
    admins (403 otherwise)."""
    settings = InsightSettings.from_config(config.insight)

    async def kpis(request: Request) -> JSONResponse:
        secret = _key_of(request)
        principal = await asyncio.to_thread(principal_of, secret) if secret else None
        if principal is None:
            return JSONResponse(
                {
                    "error": "a valid gateway key is required",
                    "hint": "send it as x-api-key or Authorization: Bearer",
                },
                status_code=401,
            )
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
