"""The REST API under ``/api/v1``: one module per domain, each a list of endpoints.

A domain adds its routes by listing :class:`Endpoint` declarations in its own module
(``server/api/<domain>.py``) and naming the module in :data:`DOMAINS`, or — for a part
that lives elsewhere — by passing endpoints to :func:`api_routes`. The OpenAPI document
at ``/api/v1/openapi.json`` is built from the same declarations. See docs/api.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from orchestra.server.api.context import ApiContext
from orchestra.server.api.endpoint import Endpoint, ErrorBody, error_response
from orchestra.server.api.openapi import openapi_document
from orchestra.server.api.policy_check import PolicyAuthorizer, policy_principal

DOMAINS = (
    "system",
    "auth",
    "runs",
    "queue",
    "org",
    "keys",
    "budgets",
    "audit",
    "policies",
    "alerts",
    "insight",
    "registry",
    "secrets",
    "knowledge",
    "agents",
)
"""Modules of this package whose ``ENDPOINTS`` are served (in this order)."""


def endpoints(extra: Sequence[Endpoint] = ()) -> list[Endpoint]:
    """Every endpoint: the domains' and ``extra``."""
    found: list[Endpoint] = []
    for name in DOMAINS:
        module: Any = importlib.import_module(f"orchestra.server.api.{name}")
        found += module.ENDPOINTS
    return [*found, *extra]


def api_routes(ctx: ApiContext, extra: Sequence[Endpoint] = ()) -> list[BaseRoute]:
    """The API's routes (and ``/api/v1/openapi.json``)."""
    from orchestra import __version__

    document: dict[str, Any] = {}

    async def _openapi(call: Any) -> JSONResponse:
        return JSONResponse(document)

    async def _api_root(call: Any) -> JSONResponse:
        return JSONResponse({"name": "orchestra", "version": __version__})

    declared = [
        Endpoint(
            "GET",
            "/api",
            None,
            _api_root,
            "Name and version (kept from 0.x)",
            None,
            public=True,
            absolute=True,
            tag="api",
            statuses=(400,),
        ),
        Endpoint(
            "GET",
            "/openapi.json",
            None,
            _openapi,
            "This API's OpenAPI 3.1 document",
            None,
            public=True,
            tag="api",
            statuses=(400,),
        ),
        *endpoints(extra),
    ]
    document.update(openapi_document(declared, version=__version__))
    return [e.route(ctx) for e in declared]


async def not_found(request: Request, exc: Exception) -> JSONResponse:
    """404 and 405 from routing, in the API's error format."""
    status = getattr(exc, "status_code", 404)
    message = (
        f"no endpoint at {request.url.path}"
        if status == 404
        else f"method {request.method} is not allowed on {request.url.path}"
    )
    rid = request.headers.get("x-request-id", "")[:64] or "req_routing"
    return error_response(status, message, "see /api/v1/openapi.json", rid)


__all__ = [
    "DOMAINS",
    "ApiContext",
    "Endpoint",
    "ErrorBody",
    "PolicyAuthorizer",
    "api_routes",
    "endpoints",
    "not_found",
    "policy_principal",
]
