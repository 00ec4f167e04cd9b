"""``/api/v1/org``: the organisation tree, and storing it from the configuration."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestra.accounting import sync_org_audited
from orchestra.org import build_org_tree
from orchestra.server.api.endpoint import Call, Endpoint


class OrgOut(BaseModel):
    """The organisation as configured (units nested, developers with roles)."""

    model_config = ConfigDict(extra="allow")
    name: str


class SyncOut(BaseModel):
    """What storing the organisation changed."""

    added: list[str]
    updated: list[str]
    removed: list[str]


async def _show_org(call: Call[Any, Any]) -> OrgOut:
    tree = build_org_tree(call.ctx.current_config.organisation)
    return OrgOut.model_validate(tree.to_dict())


async def _sync_org(call: Call[Any, Any]) -> SyncOut:
    tree = build_org_tree(call.ctx.current_config.organisation)
    audit = call.ctx.accounting().audit
    result = await call.blocking(sync_org_audited, audit, tree, actor=call.identity.actor)
    return SyncOut(added=result.added, updated=result.updated, removed=result.removed)


ENDPOINTS = [
    Endpoint("GET", "/org", "read_org", _show_org, "The organisation tree", OrgOut, tag="org"),
    Endpoint(
        "POST",
        "/org/sync",
        "manage_org",
        _sync_org,
        "Store the organisation of the configuration in force (audited)",
        SyncOut,
        tag="org",
    ),
]
