"""The request path through a live gateway: routing, passthrough, retries, fallbacks,
circuit breakers, errors in the client's format."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal

import httpx
import pytest
import yaml

from orchestra.accounting import SecretBox, SecretStore
from orchestra.config import parse_config
from orchestra.gateway import GatewayDeps
from orchestra.roster import agent_mark
from orchestra.testing import DropMidStream, FakeUpstream, Fault, Reply, Timeout
from tests.gateway.conftest import LiveGateway
from tests.gateway.helpers import ServerThread, gateway_config, make_app, memory_accountant

MESSAGES = [{"role": "user", "content": "hello"}]


def _post(live: LiveGateway, body: dict[str, object], **kw: object) -> httpx.Response:
    headers = {"x-api-key": live.key, "anthropic-version": "2023-06-01"}
    headers.update(kw.pop("headers", {}))  # type: ignore[arg-type]
    return httpx.post(
        f"{live.url}/v1/messages{kw.pop('query', '')}", json=body, headers=headers, timeout=10
    )


def _chat(live: LiveGateway, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{live.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {live.key}"},
        timeout=10,
    )


def test_unknown_fields_pass_through_and_bytes_are_untouched(
    live: LiveGateway, upstream: FakeUpstream
) -> None:
    raw = json.dumps(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 10,
            "messages": [{"role": "wizard", "content": "x", "future_field": [1, 2]}],
            "brand_new_option": {"a": 1},
        },
        indent=3,
    ).encode()
    response = httpx.post(
        f"{live.url}/v1/messages?beta=true",
        content=raw,
        headers={
            "x-api-key": live.key,
            "content-type": "application/json",
            "anthropic-beta": "tools-2099-01-01",
            "anthropic-version": "2023-06-01",
        },
    )
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]
    assert sent.body == raw  # same model name, no mark: the body is forwarded byte for byte
    assert sent.query == "beta=true"
    assert sent.headers["anthropic-beta"] == "tools-2099-01-01"
    assert sent.headers.get("x-api-key") != live.key


def test_agent_mark_is_stripped_and_recorded(live: LiveGateway, upstream: FakeUpstream) -> None:
    system = [
        {"type": "text", "text": "base"},
        {"type": "text", "text": agent_mark("qa-lead") + "Be careful."},
    ]
    response = _post(
        live, {"model": "haiku", "max_tokens": 5, "messages": MESSAGES, "system": system}
    )
    assert response.status_code == 200
    forwarded = upstream.requests[-1].json["system"]
    assert forwarded == [{"type": "text", "text": "base"}, {"type": "text", "text": "Be careful."}]
    assert live.accountant.entries[-1].agent == "qa-lead"
    # Deterministic: the same request gives the same upstream bytes (prompt caching).
    _post(live, {"model": "haiku", "max_tokens": 5, "messages": MESSAGES, "system": system})
    assert upstream.requests[-1].body == upstream.requests[-2].body


def test_agent_mark_in_an_openai_system_message_is_stripped_and_recorded(
    live: LiveGateway, upstream: FakeUpstream
) -> None:
    body = {
        "model": "haiku",
        "max_tokens": 5,
        "messages": [
            {"role": "system", "content": "base"},
            {"role": "developer", "content": [{"type": "text", "text": agent_mark("go-reviewer")}]},
            {"role": "user", "content": "hi"},
        ],
    }
    response = httpx.post(
        f"{live.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {live.key}"},
    )
    assert response.status_code == 200, response.text
    assert b"orchestra-agent" not in upstream.requests[-1].body
    assert live.accountant.entries[-1].agent == "go-reviewer"


def test_engine_attribution_headers_are_recorded(live: LiveGateway) -> None:
    response = _post(
        live,
        {"model": "sonnet", "max_tokens": 5, "messages": MESSAGES},
        headers={
            "x-orchestra-run": "run-7",
            "x-orchestra-step": "red",
            "x-orchestra-agent": "tester",
        },
    )
    assert response.status_code == 200
    entry = live.accountant.entries[-1]
    assert (entry.run_id, entry.step, entry.agent, entry.tier) == (
        "run-7",
        "red",
        "tester",
        "sonnet",
    )


def test_team_override_routes_the_tier(upstream: FakeUpstream) -> None:
    accountant = memory_accountant()
    key = accountant.add_key("bob", "local-team")
    server = ServerThread(make_app(gateway_config(upstream.base_url), accountant)).start()
    try:
        response = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "sonnet", "messages": MESSAGES},
            headers={"authorization": f"Bearer {key}"},
        )
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["x-orchestra-served-model"] == "qwen-local"
    assert upstream.requests[-1].json["model"] == "qwen2.5-coder"


def test_retry_honours_retry_after_then_succeeds(upstream: FakeUpstream) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    accountant = memory_accountant()
    key = accountant.add_key("alice", "payments")
    app = make_app(
        gateway_config(upstream.base_url), accountant, GatewayDeps(sleep=sleep, rand=lambda: 0.5)
    )
    upstream.script(Fault(status=429, retry_after=2), Reply(text="ok"))
    server = ServerThread(app).start()
    try:
        response = httpx.post(
            f"{server.base_url}/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": MESSAGES},
            headers={"x-api-key": key},
        )
    finally:
        server.stop()
    assert response.status_code == 200
    assert slept == [2.0]
    entry = accountant.entries[-1]
    assert [(a.model, a.status) for a in entry.attempts] == [
        ("claude-haiku-4-5", 429),
        ("claude-haiku-4-5", 200),
    ]


def test_overload_falls_back_to_the_cheaper_model(
    live: LiveGateway, upstream: FakeUpstream
) -> None:
    upstream.script(Fault(status=529), Fault(status=529), Reply(text="from sonnet"))
    response = _post(live, {"model": "opus", "max_tokens": 5, "messages": MESSAGES})
    assert response.status_code == 200
    assert response.headers["x-orchestra-served-model"] == "claude-sonnet-4-5"
    assert response.headers["x-orchestra-fallback"] == "1"
    entry = live.accountant.entries[-1]
    assert entry.served_model == "claude-sonnet-4-5"
    assert [a.model for a in entry.attempts] == [
        "claude-opus-4-1",
        "claude-opus-4-1",
        "claude-sonnet-4-5",
    ]


def test_no_silent_switch_to_a_costlier_model(live: LiveGateway, upstream: FakeUpstream) -> None:
    # sonnet's fallback is opus, which costs more: refused unless allowed explicitly.
    upstream.script(Fault(status=500), Fault(status=500))
    response = _post(live, {"model": "sonnet", "max_tokens": 5, "messages": MESSAGES})
    assert response.status_code == 500
    assert response.json()["type"] == "error"
    entry = live.accountant.entries[-1]
    assert entry.outcome == "upstream_error"
    assert entry.attempts[-1].error == "fallback refused: costlier"
    assert all(r.json["model"] != "claude-opus-4-1" for r in upstream.requests)


def test_costlier_fallback_when_allowed_is_visible(upstream: FakeUpstream) -> None:
    accountant = memory_accountant()
    key = accountant.add_key("alice", "payments")
    config = gateway_config(upstream.base_url, allow_costlier_fallback=True)
    upstream.script(Fault(status=503), Fault(status=503), Reply(text="opus"))
    server = ServerThread(make_app(config, accountant)).start()
    try:
        response = httpx.post(
            f"{server.base_url}/v1/messages",
            json={"model": "sonnet", "max_tokens": 5, "messages": MESSAGES},
            headers={"x-api-key": key},
        )
    finally:
        server.stop()
    assert response.headers["x-orchestra-served-model"] == "claude-opus-4-1"
    assert accountant.entries[-1].served_model == "claude-opus-4-1"


def test_client_errors_are_not_retried(live: LiveGateway, upstream: FakeUpstream) -> None:
    upstream.script(Fault(status=400, message="bad thing"))
    response = _chat(live, {"model": "claude-haiku-4-5", "messages": MESSAGES})
    assert response.status_code == 400
    assert "error" in response.json()  # OpenAI shape (translated from the Anthropic upstream)
    assert len(upstream.requests) == 1


def test_timeout_falls_back(upstream: FakeUpstream) -> None:
    accountant = memory_accountant()
    key = accountant.add_key("alice", "payments")
    config = gateway_config(upstream.base_url, first_byte_timeout_s=0.3, retry={"max_attempts": 1})
    upstream.script(Timeout(), Reply(text="fallback"))
    server = ServerThread(make_app(config, accountant)).start()
    try:
        response = httpx.post(
            f"{server.base_url}/v1/messages",
            json={"model": "opus", "max_tokens": 5, "messages": MESSAGES},
            headers={"x-api-key": key},
            timeout=10,
        )
    finally:
        server.stop()
    assert response.status_code == 200
    attempts = accountant.entries[-1].attempts
    assert attempts[0].error == "timeout" and attempts[-1].status == 200


def test_circuit_opens_and_is_exported(upstream: FakeUpstream) -> None:
    accountant = memory_accountant()
    key = accountant.add_key("alice", "payments")
    admin = accountant.add_key("root", None, admin=True)
    config = gateway_config(
        upstream.base_url,
        retry={"max_attempts": 1},
        circuit={"failure_threshold": 2, "reset_after_s": 60},
    )
    server = ServerThread(make_app(config, accountant)).start()
    try:
        for _ in range(2):
            upstream.script(Fault(status=500))
            httpx.post(
                f"{server.base_url}/v1/messages",
                json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": MESSAGES},
                headers={"x-api-key": key},
            )
        before = len(upstream.requests)
        refused = httpx.post(
            f"{server.base_url}/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": MESSAGES},
            headers={"x-api-key": key},
        )
        metrics = httpx.get(f"{server.base_url}/metrics", headers={"x-api-key": admin}).text
    finally:
        server.stop()
    assert refused.status_code == 503
    assert len(upstream.requests) == before  # not even tried
    assert 'orchestra_circuit_state{upstream="anthropic"} 2' in metrics
    assert 'orchestra_upstream_errors_total{provider="anthropic",error="500"} 2' in metrics


def test_stream_dropped_by_upstream_is_recorded_with_usage_so_far(
    live: LiveGateway, upstream: FakeUpstream
) -> None:
    upstream.script(DropMidStream(after_events=4, reply=Reply(text="a long answer " * 20)))
    with httpx.stream(
        "POST",
        f"{live.url}/v1/messages",
        json={"model": "haiku", "max_tokens": 100, "messages": MESSAGES, "stream": True},
        headers={"x-api-key": live.key},
    ) as response:
        body = response.read()
    assert response.status_code == 200
    assert b"event: error" in body  # the client is told, in its format
    entry = live.accountant.entries[-1]
    assert entry.outcome == "stream_failed"
    assert entry.usage.input_tokens > 0


def test_models_lists_tiers_aliases_and_models(live: LiveGateway) -> None:
    response = httpx.get(f"{live.url}/v1/models", headers={"x-api-key": live.key})
    ids = [m["id"] for m in response.json()["data"]]
    assert {"opus", "sonnet", "haiku", "big", "qwen-local"} <= set(ids)


def test_count_tokens_forwarded_or_estimated(live: LiveGateway, upstream: FakeUpstream) -> None:
    body = {"model": "haiku", "messages": MESSAGES}
    response = httpx.post(
        f"{live.url}/v1/messages/count_tokens", json=body, headers={"x-api-key": live.key}
    )
    assert response.status_code == 200
    assert response.headers["x-orchestra-token-count"] == "upstream"
    assert upstream.requests[-1].path == "/v1/messages/count_tokens"
    local = httpx.post(
        f"{live.url}/v1/messages/count_tokens",
        json={"model": "qwen-local", "messages": MESSAGES},
        headers={"x-api-key": live.key},
    )
    assert local.headers["x-orchestra-token-count"] == "estimate"
    assert local.json()["input_tokens"] > 0


def test_health_ready_metrics(live: LiveGateway) -> None:
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live.url}/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    _post(live, {"model": "haiku", "max_tokens": 5, "messages": MESSAGES})
    httpx.post(f"{live.url}/v1/messages", json={}, headers={"x-api-key": "orc_nope"})
    anonymous = httpx.get(f"{live.url}/metrics")
    assert anonymous.status_code == 401
    assert httpx.get(f"{live.url}/metrics", headers={"x-api-key": live.key}).status_code == 403
    text = httpx.get(f"{live.url}/metrics", headers={"x-api-key": live.admin_key}).text
    assert 'orchestra_requests_total{endpoint="anthropic",status="401",model=""} 1' in text
    assert 'orchestra_requests_total{endpoint="anthropic",status="200",model="haiku"} 1' in text
    assert "orchestra_request_duration_seconds_bucket" in text
    assert 'orchestra_tokens_total{model="claude-haiku-4-5",kind="input"}' in text


def test_spend_authorisation(live: LiveGateway) -> None:
    _post(live, {"model": "haiku", "max_tokens": 5, "messages": MESSAGES})
    own = httpx.get(f"{live.url}/v1/orchestra/spend", headers={"x-api-key": live.key})
    assert own.status_code == 200 and own.json()["developer"] == "alice"
    other = httpx.get(
        f"{live.url}/v1/orchestra/spend?developer=bob", headers={"x-api-key": live.key}
    )
    assert other.status_code == 403
    admin = httpx.get(f"{live.url}/v1/orchestra/spend?all=1", headers={"x-api-key": live.admin_key})
    assert admin.status_code == 200 and admin.json()["developer"] is None


def test_reload_needs_admin_and_swaps_routing(live: LiveGateway, upstream: FakeUpstream) -> None:
    refused = httpx.post(f"{live.url}/v1/orchestra/admin/reload", headers={"x-api-key": live.key})
    assert refused.status_code == 403
    live.app.config_loader = lambda: gateway_config(upstream.base_url, aliases={"fast": "haiku"})
    ok = httpx.post(f"{live.url}/v1/orchestra/admin/reload", headers={"x-api-key": live.admin_key})
    assert ok.status_code == 200
    response = _post(live, {"model": "fast", "max_tokens": 5, "messages": MESSAGES})
    assert response.headers["x-orchestra-served-model"] == "claude-haiku-4-5"
    assert live.accountant.audit_log[-1][1] == "gateway.reload"


def test_zero_cost_model_is_never_blocked_by_a_dollar_budget(live: LiveGateway) -> None:
    live.accountant.budgets["developer:alice"] = Decimal(0)
    response = _post(live, {"model": "qwen-local", "max_tokens": 5, "messages": MESSAGES})
    assert response.status_code == 200
    refused = _post(live, {"model": "haiku", "max_tokens": 5, "messages": MESSAGES})
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"


def test_reload_does_not_drop_requests_in_flight(live: LiveGateway, upstream: FakeUpstream) -> None:
    upstream.script(Reply(text="slow answer", delay_s=0.5))
    result: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: result.append(
            _post(live, {"model": "haiku", "max_tokens": 5, "messages": MESSAGES})
        )
    )
    slow.start()
    deadline = time.monotonic() + 5
    while not upstream.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    # Mid-flight: the haiku tier now goes elsewhere; the request already routed finishes.
    live.app.config_loader = lambda: gateway_config(upstream.base_url, aliases={"x": "opus"})
    reloaded = httpx.post(
        f"{live.url}/v1/orchestra/admin/reload", headers={"x-api-key": live.admin_key}
    )
    assert reloaded.status_code == 200
    slow.join(10)
    assert result and result[0].status_code == 200
    assert result[0].json()["content"][0]["text"] == "slow answer"
    assert _post(live, {"model": "x", "max_tokens": 5, "messages": MESSAGES}).status_code == 200


@pytest.mark.parametrize("source", ["env", "secret"])
def test_upstream_credential_from_env_or_encrypted_secret(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = GatewayDeps(sleep=lambda _s: asyncio.sleep(0), rand=lambda: 0.0)
    provider: dict[str, object] = {"kind": "anthropic"}
    if source == "env":
        monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-upstream-1")
        provider["api_key_env"] = "TEST_UPSTREAM_KEY"
    else:
        store = SecretStore(SecretBox.from_home())
        store.set("anthropic-key", "sk-upstream-1")
        provider["api_key_secret"] = "anthropic-key"
        deps.secrets = store.as_mapping()
    with FakeUpstream.start(api_key="sk-upstream-1") as upstream:
        config = parse_config(
            yaml.safe_dump(
                {
                    "providers": {"anthropic": {**provider, "base_url": upstream.base_url}},
                    "models": {"claude-haiku-4-5": {"provider": "anthropic"}},
                    "tiers": {"haiku": {"model": "claude-haiku-4-5"}},
                }
            ),
            environ={},
        )
        accountant = memory_accountant()
        key = accountant.add_key("alice", "payments")
        server = ServerThread(make_app(config, accountant, deps)).start()
        try:
            response = httpx.post(
                f"{server.base_url}/v1/messages",
                json={"model": "haiku", "max_tokens": 5, "messages": MESSAGES},
                headers={"x-api-key": key},
            )
        finally:
            server.stop()
        assert response.status_code == 200, response.text
        assert upstream.requests[-1].headers["x-api-key"] == "sk-upstream-1"


def test_metrics_can_be_made_public(upstream: FakeUpstream) -> None:
    accountant = memory_accountant()
    config = gateway_config(upstream.base_url, metrics_public=True)
    server = ServerThread(make_app(config, accountant)).start()
    try:
        response = httpx.get(f"{server.base_url}/metrics")
    finally:
        server.stop()
    assert response.status_code == 200
    assert "# TYPE orchestra_requests_total counter" in response.text
