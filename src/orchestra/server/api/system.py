"""``/api/v1`` itself: the root, the OpenAPI document, who am I, configuration reload."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from orchestra.server.api.endpoint import Call, Endpoint


class ApiRoot(BaseModel):
    """The API's name and version."""

    name: str
    version: str
    openapi: str


class Me(BaseModel):
    """The authenticated identity."""

    kind: str
    id: str
    roles: list[str]
    unit: str | None
    lead_of: list[str]
    via: str
    scopes: list[str] | None


class Reloaded(BaseModel):
    """When the configuration in force was loaded."""

    reloaded: bool
    loaded_at: str


async def _api_v1_root(call: Call[Any, Any]) -> ApiRoot:
    from orchestra import __version__

    return ApiRoot(name="orchestra", version=__version__, openapi="/api/v1/openapi.json")


async def _whoami(call: Call[Any, Any]) -> Me:
    identity = call.identity
    p = identity.principal
    return Me(
        kind=p.kind,
        id=p.id,
        roles=sorted(p.roles),
        unit=p.unit,
        lead_of=list(p.lead_of),
        via=identity.via,
        scopes=sorted(identity.scopes) if identity.scopes is not None else None,
    )


async def _reload_config(call: Call[Any, Any]) -> Reloaded:
    app = call.ctx.app
    if app is None or app.config_loader is None:
        from orchestra.server.api.context import NotConfigured

        raise NotConfigured(
            "this server was started without a configuration file to reload",
            hint="start it with `orchestra serve` in a folder with orchestra.yaml",
        )
    config = await call.blocking(app.config_loader)
    await call.blocking(app.gateway.reload, config)
    loaded_at = app.gateway.snapshot.loaded_at.isoformat()
    await call.blocking(
        call.ctx.accounting().audit.append,
        call.identity.actor,
        "config.reload",
        "config",
        {"trigger": "api", "loaded_at": loaded_at},
    )
    return Reloaded(reloaded=True, loaded_at=loaded_at)


ENDPOINTS = [
    Endpoint(
        "GET",
        "",
        None,
        _api_v1_root,
        "The API's name and version",
        ApiRoot,
        public=True,
        tag="api",
        statuses=(400,),
    ),
    Endpoint("GET", "/me", "whoami", _whoami, "The authenticated identity", Me, tag="api"),
    Endpoint(
        "POST",
        "/config/reload",
        "reload_config",
        _reload_config,
        "Reload orchestra.yaml (audited)",
        Reloaded,
        tag="api",
        statuses=(400, 401, 403, 404),
    ),
]
