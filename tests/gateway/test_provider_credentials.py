"""Provider credentials and unreachable providers (issue 10, section 6): a provider without
its credential is never called; a provider that refuses the gateway's credential is a 502
naming it, never a 401 the client would read as its own key being wrong; an unreachable
provider's root cause reaches the client, also once its circuit is open."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from orchestra.config import parse_config
from orchestra.config.schema import OrchestraConfig
from orchestra.gateway import CircuitState, GatewayApp
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import make_app, memory_accountant

MESSAGES = [{"role": "user", "content": "hi"}]
VARIABLE = "ORCHESTRA_TEST_PROVIDER_KEY"


def _config(anthropic_url: str, local_url: str, **anthropic: Any) -> OrchestraConfig:
    data = {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": anthropic_url, **anthropic},
            "local": {"kind": "openai", "base_url": local_url + "/v1"},
        },
        "models": {
            "claude-haiku-4-5": {"provider": "anthropic"},
            "qwen-local": {"provider": "local", "upstream_name": "qwen2.5-coder"},
        },
        "tiers": {"haiku": {"model": "claude-haiku-4-5", "fallbacks": ["qwen-local"]}},
        "gateway": {
            "key_cache_ttl_s": 0,
            "retry": {"max_attempts": 1, "base_delay_s": 0, "max_delay_s": 0},
            "circuit": {"failure_threshold": 2, "reset_after_s": 60},
        },
    }
    return parse_config(yaml.safe_dump(data), environ={})


class Client:
    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.accountant = app.gateway.accountant
        self.key = self.accountant.add_key("alice", "payments")  # type: ignore[attr-defined]
        self.http = TestClient(app, raise_server_exceptions=False)

    def messages(self, model: str) -> Any:
        body = {"model": model, "max_tokens": 5, "messages": MESSAGES}
        return self.http.post("/v1/messages", json=body, headers={"x-api-key": self.key})

    def chat(self, model: str) -> Any:
        body = {"model": model, "messages": MESSAGES}
        return self.http.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {self.key}"}
        )


def test_a_provider_without_its_credential_is_never_called(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    config = _config(upstream.base_url, upstream.base_url, api_key_env=VARIABLE)
    client = Client(make_app(config, memory_accountant()))
    with client.http:
        refused = client.messages("claude-haiku-4-5")
        assert refused.status_code == 502
        message = refused.json()["error"]["message"]
        assert "'anthropic'" in message and VARIABLE in message
        assert refused.json()["error"]["type"] == "api_error"
        chat = client.chat("claude-haiku-4-5")
        assert chat.status_code == 502 and chat.json()["error"]["code"] == (
            "provider_credential_missing"
        )
        assert upstream.requests == []  # never called
        # A tier falls back to a model whose provider needs no credential.
        served = client.messages("haiku")
        assert served.status_code == 200
        assert served.headers["x-orchestra-served-model"] == "qwen-local"
        counted = client.http.post(
            "/v1/messages/count_tokens",
            json={"model": "claude-haiku-4-5", "messages": MESSAGES},
            headers={"x-api-key": client.key},
        )
        assert counted.status_code == 502 and VARIABLE in counted.json()["error"]["message"]
        ready = client.http.get("/readyz").json()
        assert ready["providers_without_credential"] == ["anthropic"]
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]
    entry = client.accountant.entries[0]  # type: ignore[attr-defined]
    assert entry.outcome == "upstream_error" and entry.attempts[0].error == "no credential"


def test_a_refused_provider_credential_is_a_502_naming_the_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VARIABLE, "sk-wrong")
    with FakeUpstream.start(api_key="sk-right") as guarded, FakeUpstream.start() as local:
        config = _config(guarded.base_url, local.base_url, api_key_env=VARIABLE)
        client = Client(make_app(config, memory_accountant()))
        with client.http:
            for _ in range(3):
                refused = client.messages("claude-haiku-4-5")
                assert refused.status_code == 502, refused.text  # never the upstream's 401
                body = refused.json()
                assert body["error"]["type"] == "api_error"
                assert "'anthropic'" in body["error"]["message"]
                assert "your Orchestra key is fine" in body["error"]["message"]
                assert VARIABLE in body["error"]["message"]
            chat = client.chat("claude-haiku-4-5")
            assert chat.status_code == 502
            assert chat.json()["error"]["code"] == "provider_credential_refused"
            # The breaker is not what refuses: the credential is (and a fix needs no wait).
            breaker = client.app.gateway.circuits.get("anthropic")
            assert breaker.state is CircuitState.CLOSED
            # The next model of a tier serves.
            served = client.messages("haiku")
            assert served.status_code == 200
            assert served.headers["x-orchestra-served-model"] == "qwen-local"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_provider_shows_its_root_cause_also_once_the_circuit_is_open(
    upstream: FakeUpstream,
) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    client = Client(make_app(_config(dead, upstream.base_url), memory_accountant()))
    with client.http:
        for _ in range(2):
            failed = client.messages("claude-haiku-4-5")
            assert failed.status_code == 502
            message = failed.json()["error"]["message"]
            assert "ConnectionRefusedError" in message and dead in message
        assert client.app.gateway.circuits.get("anthropic").state is CircuitState.OPEN
        refused = client.messages("claude-haiku-4-5")
        assert refused.status_code == 503
        message = refused.json()["error"]["message"]
        assert "circuit breaker is open" in message
        assert "ConnectionRefusedError" in message and dead in message  # the root cause


def test_a_credential_gone_at_reload_is_reported_and_its_provider_never_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VARIABLE, "sk-right")
    with FakeUpstream.start(api_key="sk-right") as guarded, FakeUpstream.start() as local:
        config = _config(guarded.base_url, local.base_url, api_key_env=VARIABLE)
        app = make_app(config, memory_accountant())
        app.config_loader = lambda: config
        client = Client(app)
        admin = client.accountant.add_key("root", admin=True)  # type: ignore[attr-defined]
        with client.http:
            assert client.messages("claude-haiku-4-5").status_code == 200
            monkeypatch.delenv(VARIABLE)
            reloaded = client.http.post("/v1/orchestra/admin/reload", headers={"x-api-key": admin})
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["providers_without_credential"] == ["anthropic"]
            refused = client.messages("claude-haiku-4-5")
            assert refused.status_code == 502
            message = refused.json()["error"]["message"]
            assert "'anthropic'" in message and VARIABLE in message
        assert len(guarded.requests) == 1  # only the call made before the reload
