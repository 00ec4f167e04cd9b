"""Built from the route table and the role list: every route of the API declares an action
(or is public on purpose), every declared action exists, and for every route and every
role the answer is what the role table says — a role without the action is refused 403
before the handler runs, and anonymous callers get 401 everywhere but the public routes."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route

from orchestra.identity import ACTIONS, ROLES
from tests.server.api.conftest import Api, api_config

pytestmark = pytest.mark.anyio

PUBLIC = {"/api", "/api/v1", "/api/v1/openapi.json", "/api/v1/auth/login", "/api/v1/auth/callback"}
DEVELOPER_OF = {"admin": "root", "lead": "lena", "developer": "dev", "viewer": "vic"}


def _routes(api: Api) -> list[Route]:
    fallback: Any = api.app.fallback
    return [r for r in fallback.routes if isinstance(r, Route)]


def _calls(api: Api) -> list[tuple[str, str, Any]]:
    out = []
    for route in _routes(api):
        spec = getattr(route, "endpoint_spec", None)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            path = route.path.replace("{", "").replace("}", "")  # a placeholder id
            out.append((method, path, spec))
    return out


def test_every_route_declares_an_action_or_is_public(api: Api) -> None:
    routes = _routes(api)
    assert len(routes) >= 20
    for route in routes:
        spec = getattr(route, "endpoint_spec", None)
        assert spec is not None, f"{route.path} is not declared as an Endpoint"
        if route.path in PUBLIC:
            assert spec.public and spec.action is None, route.path
        else:
            assert spec.action in ACTIONS, f"{route.path}: unknown action {spec.action!r}"
            assert not spec.public, route.path


async def test_anonymous_callers_get_401_except_on_public_routes(api: Api) -> None:
    async with api.client() as client:
        for method, path, spec in _calls(api):
            if spec.public:
                continue
            response = await client.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["type"] == "not_authenticated"


async def test_each_role_is_refused_exactly_the_actions_it_lacks(api: Api) -> None:
    checked = 0
    for role in ROLES:
        async with api.client(DEVELOPER_OF[role]) as client:
            for method, path, spec in _calls(api):
                if spec.public:
                    continue
                response = await client.request(method, path, json={})
                allowed = role in ACTIONS[spec.action].roles
                if allowed:
                    assert response.status_code != 403 or "leads" in response.text, (
                        role,
                        method,
                        path,
                        response.text,
                    )
                else:
                    assert response.status_code == 403, (role, method, path, response.text)
                    assert role in response.json()["error"]["message"]
                checked += 1
    assert checked >= 4 * 20


async def test_a_service_key_takes_only_the_actions_it_is_scoped_to(api: Api) -> None:
    scoped = [{"key_id": api.key_ids["svc"], "actions": ["read_spend", "read_runs"]}]
    api.app.gateway.reload(api_config(service_keys=scoped))
    async with api.client("svc") as client:
        me = (await client.get("/api/v1/me")).json()
        spend = await client.get("/api/v1/spend")
        keys = await client.get("/api/v1/keys")
    assert me["kind"] == "service" and me["scopes"] == ["read_runs", "read_spend"]
    assert spend.status_code == 200
    assert keys.status_code == 403
    assert "not scoped to read_keys" in keys.json()["error"]["message"]
