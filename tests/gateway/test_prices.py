"""Unknown prices never make a model free: a configuration with an Anthropic-format model
that has no price is refused before any call, and a price that disappears later (a price
file edit) refuses calls instead of letting them past every dollar budget."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestra.config import parse_config
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import ConfigError
from orchestra.server import build_app
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import ServerThread, gateway_config, make_app, memory_accountant

MESSAGES = [{"role": "user", "content": "hello"}]


def _config(base_url: str, **acme: Any) -> OrchestraConfig:
    data: dict[str, Any] = {
        "providers": {
            "vendor": {"kind": "anthropic", "base_url": base_url},
            "local": {"kind": "openai", "base_url": base_url + "/v1"},
        },
        "models": {
            "acme-large": {"provider": "vendor", **acme},
            "qwen-local": {"provider": "local"},
        },
        "tiers": {"sonnet": {"model": "acme-large", "fallbacks": ["qwen-local"]}},
    }
    return parse_config(yaml.safe_dump(data), environ={})


def test_an_anthropic_model_without_a_price_is_refused_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    with pytest.raises(ConfigError) as refused:
        build_app(_config("http://127.0.0.1:9"), database_url=url, include_api=False)
    assert "acme-large" in str(refused.value)
    assert refused.value.hint is not None and "price:" in refused.value.hint
    assert "qwen-local" not in str(refused.value)  # an OpenAI-format model is a $0 local one


def test_a_configured_price_makes_it_valid_and_is_charged(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    config = _config(upstream.base_url, price={"input": 2, "output": 10})
    app = build_app(config, database_url=f"sqlite:///{tmp_path / 'gw.db'}", include_api=False)
    accounting = app.gateway.accountant.accounting  # type: ignore[attr-defined]
    server = ServerThread(app).start()
    try:
        secret, _ = accounting.keys.create("alice", "payments")
        response = httpx.post(
            f"{server.base_url}/v1/messages",
            json={"model": "acme-large", "max_tokens": 10, "messages": MESSAGES},
            headers={"x-api-key": secret},
            timeout=10,
        )
        assert response.status_code == 200
        usage = response.json()["usage"]
    finally:
        server.stop()
    [entry] = accounting.ledger.entries()
    expected = (Decimal(usage["input_tokens"]) * 2 + Decimal(usage["output_tokens"]) * 10) / (10**6)
    assert entry.cost_usd == expected > 0


def test_a_price_that_disappears_refuses_calls_instead_of_making_them_free(
    upstream: FakeUpstream,
) -> None:
    accountant = memory_accountant()
    accountant.budgets["developer:alice"] = Decimal(1)
    key = accountant.add_key("alice", "payments")
    server = ServerThread(make_app(gateway_config(upstream.base_url), accountant)).start()
    try:
        del accountant.prices["claude-haiku-4-5"]  # e.g. removed from the price file
        anthropic = httpx.post(
            f"{server.base_url}/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": MESSAGES},
            headers={"x-api-key": key},
            timeout=10,
        )
        openai = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": MESSAGES},
            headers={"authorization": f"Bearer {key}"},
            timeout=10,
        )
    finally:
        server.stop()
    assert anthropic.status_code == openai.status_code == 503
    assert anthropic.json()["error"]["type"] == "api_error"
    assert "claude-haiku-4-5" in anthropic.json()["error"]["message"]
    assert "price" in openai.json()["error"]["message"]
    assert upstream.requests == []  # refused before any upstream call
    assert accountant.held.get("developer:alice", Decimal(0)) == 0
    assert accountant.entries == []


def test_reloading_to_a_configuration_with_an_unpriced_model_keeps_the_old_one(
    upstream: FakeUpstream,
) -> None:
    accountant = memory_accountant()
    app = make_app(gateway_config(upstream.base_url), accountant)
    before = app.gateway.snapshot
    with pytest.raises(ConfigError):
        app.gateway.reload(_config(upstream.base_url))
    assert app.gateway.snapshot is before
