"""The gateway's policies take a service key's scopes as input, and find a relative
``policies.folder`` next to orchestra.yaml whatever the working folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestra.config import load_config
from orchestra.server.app import build_app
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import make_app, memory_accountant
from tests.gateway.test_model_policies import ORG, Clients, _config, _denials, clients

__all__ = ["clients"]  # the fixture, imported to be used here


def test_a_service_key_without_call_model_scope_cannot_call_models(
    upstream: FakeUpstream, clients: Clients
) -> None:
    accountant = memory_accountant()
    reader = accountant.add_key("ann", "payments")
    caller = accountant.add_key("ann", "payments")
    service_keys = [
        {"key_id": accountant.keys[reader].key_id, "actions": ["read_spend"]},
        {"key_id": accountant.keys[caller].key_id, "actions": ["call_model"]},
    ]
    config = _config(upstream.base_url, identity={"service_keys": service_keys})
    _call = clients(make_app(config, accountant))
    refused = _call(reader, "claude-sonnet-4-5")
    assert refused.status_code == 403, refused.text
    assert "service-key-scopes-call-model" in refused.json()["error"]["message"]
    (denial,) = _denials(accountant)
    assert denial[3]["policy_ids"] == ["service-key-scopes-call-model"]
    assert denial[3]["principal"] == f"key:{accountant.keys[reader].key_id}"
    assert upstream.requests == [] and accountant.entries == []
    # Scoped to call_model: it calls, within its developer's region (eu, not local/us).
    assert _call(caller, "claude-sonnet-4-5").status_code == 200
    assert _call(caller, "qwen-local").status_code == 403
    # A key not listed as a service key is its developer, as before.
    assert _call(accountant.add_key("ann", "payments"), "claude-sonnet-4-5").status_code == 200


def test_a_relative_policies_folder_is_under_the_config_files_folder(
    upstream: FakeUpstream, clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "policies").mkdir(parents=True)
    (project / "policies" / "models.cedar").write_text(
        '@id("no-opus")\n'
        'forbid (principal, action == Action::"call_model",\n'
        '        resource == Model::"claude-opus-4-1");\n'
    )
    data = yaml.safe_load(_config(upstream.base_url).model_dump_json(exclude_none=True))
    data["organisation"], data["policies"] = ORG, {"folder": "policies"}
    (project / "orchestra.yaml").write_text(yaml.safe_dump(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a policies/ here would be the wrong one
    accountant = memory_accountant()
    path = project / "orchestra.yaml"
    app = build_app(load_config(path), accountant=accountant, include_api=False, config_path=path)
    _call = clients(app)
    refused = _call(accountant.add_key("ann", "payments"), "claude-opus-4-1")
    assert refused.status_code == 403, refused.text
    assert "no-opus" in refused.json()["error"]["message"]
