"""Policies on model calls, through the ASGI app and the fake upstream: a viewer cannot
spend, a squad cannot call a model its policy forbids nor leave its region (fallbacks
included), and each refusal is in the audit log with its policy id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestra.config import parse_config
from orchestra.config.schema import OrchestraConfig
from orchestra.gateway import GatewayApp, MemoryAccountant
from orchestra.policy import PolicyInvalid
from orchestra.testing import FakeUpstream, Fault
from tests.gateway.helpers import gateway_config_yaml, make_app, memory_accountant

ORG = {
    "name": "acme",
    "units": [
        {"name": "eng", "kind": "tribe", "regions": ["eu"]},
        {"name": "payments", "kind": "squad", "parent": "eng"},
        {"name": "labs", "kind": "squad"},
    ],
    "developers": [
        {"name": "ann", "unit": "payments", "role": "developer"},
        {"name": "vic", "unit": "payments", "role": "viewer"},
        {"name": "lou", "unit": "labs", "role": "developer"},
    ],
}


def _config(base_url: str, folder: Path | None = None, **extra: Any) -> OrchestraConfig:
    data = yaml.safe_load(gateway_config_yaml(base_url))
    data["organisation"] = ORG
    del data["teams"]  # its team is not a unit of ORG: refused (tests/config/test_names.py)
    data["providers"]["anthropic"]["region"] = "eu"
    data["providers"]["local"]["region"] = "us"
    if folder is not None:
        data["policies"] = {"folder": str(folder)}
    data.update(extra)
    return parse_config(yaml.safe_dump(data), environ={})


class _Client:
    """Requests to the ASGI app on one event loop, closed with the gateway's upstream pool."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def __call__(self, key: str, model: str, *, openai: bool = False) -> httpx.Response:
        return self.loop.run_until_complete(self._call(key, model, openai))

    async def _call(self, key: str, model: str, openai: bool) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            if openai:
                return await client.post(
                    "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {key}"},
                )
            return await client.post(
                "/v1/messages",
                json={
                    "model": model,
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            )

    def close(self) -> None:
        self.loop.run_until_complete(self.app.gateway.aclose())
        self.loop.close()


@pytest.fixture
def clients() -> Iterator[Callable[[GatewayApp], _Client]]:
    made: list[_Client] = []

    def make(app: GatewayApp) -> _Client:
        made.append(_Client(app))
        return made[-1]

    yield make
    for client in made:
        client.close()


Clients = Callable[[GatewayApp], _Client]


def _denials(accountant: MemoryAccountant) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [entry for entry in accountant.audit_log if entry[1] == "policy.deny"]


def test_a_viewer_cannot_spend(upstream: FakeUpstream, clients: Clients) -> None:
    accountant = memory_accountant()
    app = make_app(_config(upstream.base_url), accountant)
    _call = clients(app)
    viewer = accountant.add_key("vic", "payments")
    response = _call(viewer, "claude-sonnet-4-5")
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert "viewer-cannot-spend" in body["error"]["message"]
    assert upstream.requests == [] and accountant.entries == []  # nothing spent
    (denial,) = _denials(accountant)
    _call = clients(app)
    assert denial[3]["policy_ids"] == ["viewer-cannot-spend"]
    assert denial[3]["principal"] == "developer:vic"
    # Same refusal in the OpenAI wire format for an OpenAI client.
    response = _call(viewer, "claude-sonnet-4-5", openai=True)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "policy_denied"


def test_a_developer_of_the_same_squad_may_spend(upstream: FakeUpstream, clients: Clients) -> None:
    accountant = memory_accountant()
    app = make_app(_config(upstream.base_url), accountant)
    _call = clients(app)
    response = _call(accountant.add_key("ann", "payments"), "claude-sonnet-4-5")
    assert response.status_code == 200, response.text
    assert len(accountant.entries) == 1 and _denials(accountant) == []


def test_a_squad_cannot_call_a_model_its_policy_forbids(
    upstream: FakeUpstream, tmp_path: Path, clients: Clients
) -> None:
    (tmp_path / "models.cedar").write_text(
        '@id("eng-no-haiku-tier")\n'
        'forbid (principal in Unit::"eng", action == Action::"call_model",\n'
        '        resource in Tier::"haiku");\n'
        '@id("payments-no-opus-model")\n'
        'forbid (principal in Unit::"eng", action == Action::"call_model",\n'
        '        resource == Model::"claude-opus-4-1");\n'
    )
    accountant = memory_accountant()
    app = make_app(_config(upstream.base_url, tmp_path), accountant)
    _call = clients(app)
    ann = accountant.add_key("ann", "payments")  # payments is a squad of the tribe eng
    refused = _call(ann, "claude-opus-4-1")
    assert refused.status_code == 403, refused.text
    assert "payments-no-opus-model" in refused.json()["error"]["message"]
    assert _denials(accountant)[-1][3]["policy_ids"] == ["payments-no-opus-model"]
    # The tier opus: its primary is forbidden, its fallback sonnet is not: sonnet serves.
    served = _call(ann, "opus")
    assert served.status_code == 200, served.text
    assert [r.json["model"] for r in upstream.requests] == ["claude-sonnet-4-5"]
    # A whole tier forbidden: every model it routes to, fallbacks included.
    tier = _call(ann, "haiku")
    assert tier.status_code == 403 and "eng-no-haiku-tier" in tier.json()["error"]["message"]
    assert len(upstream.requests) == 1
    # Another squad is not under eng: the policy does not apply to it.
    assert _call(accountant.add_key("lou", "labs"), "claude-opus-4-1").status_code == 200


def test_a_squad_cannot_leave_its_region_fallbacks_included(
    upstream: FakeUpstream, clients: Clients
) -> None:
    accountant = memory_accountant()
    app = make_app(_config(upstream.base_url), accountant)
    _call = clients(app)
    ann = accountant.add_key("ann", "payments")  # eng (and so payments) is limited to eu
    refused = _call(ann, "qwen-local")  # served from the us
    assert refused.status_code == 403
    message = refused.json()["error"]["message"]
    assert "residency" in message and "us" in message and "allowed regions: eu" in message
    (denial,) = _denials(accountant)
    _call = clients(app)
    assert denial[3]["policy_ids"] == ["residency"] and denial[3]["region"] == "us"
    # haiku falls back to qwen-local (us): the primary fails, the fallback is never tried.
    upstream.script(Fault(status=529), Fault(status=529))
    response = _call(ann, "haiku")
    assert response.status_code == 529
    assert [r.json["model"] for r in upstream.requests] == ["claude-haiku-4-5"] * 2
    # A developer without a region restriction does get the fallback.
    upstream.requests.clear()
    upstream.script(Fault(status=529), Fault(status=529))
    response = _call(accountant.add_key("lou", "labs"), "haiku")
    assert response.status_code == 200, response.text
    assert [r.json["model"] for r in upstream.requests][-1] == "qwen2.5-coder"


def test_a_bad_policy_reload_keeps_the_old_set_and_is_audited(
    upstream: FakeUpstream, tmp_path: Path, clients: Clients
) -> None:
    (tmp_path / "labs.cedar").write_text(
        '@id("labs-no-sonnet")\n'
        'forbid (principal in Unit::"labs", action == Action::"call_model",\n'
        '        resource == Model::"claude-sonnet-4-5");\n'
    )
    accountant = memory_accountant()
    app = make_app(_config(upstream.base_url, tmp_path), accountant)
    _call = clients(app)
    lou = accountant.add_key("lou", "labs")
    assert _call(lou, "claude-sonnet-4-5").status_code == 403
    (tmp_path / "labs.cedar").write_text('forbid (principal in Rol::"viewer", action, resource);\n')
    with pytest.raises(PolicyInvalid) as caught:
        app.gateway.reload(_config(upstream.base_url, tmp_path))
    assert f"{tmp_path / 'labs.cedar'}:1:1" in str(caught.value)
    assert _call(lou, "claude-sonnet-4-5").status_code == 403  # the old set still decides
    (failed,) = [e for e in accountant.audit_log if e[1] == "policy.reload_failed"]
    assert "unrecognized entity type `Rol`" in " ".join(failed[3]["problems"])
    (tmp_path / "labs.cedar").write_text("// labs may use sonnet again\n")
    app.gateway.reload(_config(upstream.base_url, tmp_path))
    assert _call(lou, "claude-sonnet-4-5").status_code == 200
