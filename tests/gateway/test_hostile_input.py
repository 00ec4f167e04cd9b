"""Hostile values from a client: each is a clear 400 in the client's own format, reaches
neither the rate counters, the budgets nor the upstream, and leaves the breaker and the
metrics as they were (issue 16, problems 2, 3 and 4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from orchestra.gateway import CircuitState, GatewayApp, GatewayDeps, MemoryAccountant
from orchestra.gateway.requests import MAX_NAME_CHARS, MAX_TOKENS_CEILING
from orchestra.testing import FakeUpstream, Fault
from tests.gateway.helpers import gateway_config, make_app, memory_accountant

MESSAGES = [{"role": "user", "content": "hi"}]
HI = '[{"role": "user", "content": "hi"}]'


class Setup:
    """An in-process gateway in front of the fake upstream, with a developer key."""

    def __init__(self, upstream: FakeUpstream, app: GatewayApp, accountant: MemoryAccountant):
        self.upstream = upstream
        self.app = app
        self.accountant = accountant
        self.key = accountant.add_key("alice", "payments")
        self.admin = accountant.add_key("root", None, admin=True)
        self.client = TestClient(app, raise_server_exceptions=False)

    def post(self, path: str, raw: bytes | str, **headers: str) -> Any:
        data = raw.encode() if isinstance(raw, str) else raw
        sent = {"content-type": "application/json", "x-api-key": self.key, **headers}
        return self.client.post(path, content=data, headers=sent)

    def metrics(self) -> str:
        response = self.client.get("/metrics", headers={"x-api-key": self.admin})
        assert response.status_code == 200
        return str(response.text)


@pytest.fixture
def setup(upstream: FakeUpstream) -> Iterator[Setup]:
    accountant = memory_accountant()
    accountant.budgets["developer:alice"] = Decimal(1000)
    app = make_app(gateway_config(upstream.base_url), accountant)
    s = Setup(upstream, app, accountant)
    with s.client:
        yield s


def _anthropic_400(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    message: str = body["error"]["message"]
    assert message
    return message


def _openai_400(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"]["type"] == "invalid_request_error" and "type" not in body
    message: str = body["error"]["message"]
    assert message
    return message


def _untouched(setup: Setup) -> None:
    """Nothing was counted, held, recorded or sent upstream."""
    assert setup.accountant.counts == {}
    assert all(v == 0 for v in setup.accountant.held.values())
    assert setup.accountant.entries == []
    assert setup.upstream.requests == []


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-" + "x" * 300,  # would resolve to the sonnet tier
        "x" * (MAX_NAME_CHARS + 1),
        "claude-sonnet-4-5\u0000",
        "haiku\n",
        "claude-sonnet-\x85",
    ],
)
def test_bad_model_names_are_400_in_both_formats(setup: Setup, model: str) -> None:
    anthropic = json.dumps({"model": model, "max_tokens": 5, "messages": MESSAGES})
    assert "model" in _anthropic_400(setup.post("/v1/messages", anthropic))
    chat = json.dumps({"model": model, "messages": MESSAGES})
    assert "model" in _openai_400(setup.post("/v1/chat/completions", chat))
    count = json.dumps({"model": model, "messages": MESSAGES})
    _anthropic_400(setup.post("/v1/messages/count_tokens", count))
    _untouched(setup)


def test_a_model_name_at_the_bound_is_served(setup: Setup) -> None:
    name = "claude-haiku-" + "x" * (MAX_NAME_CHARS - len("claude-haiku-"))
    body = json.dumps({"model": name, "max_tokens": 5, "messages": MESSAGES})
    assert setup.post("/v1/messages", body).status_code == 200


LONE = [
    # in the model name, the content, the system prompt, a key: every place the body is
    # read, re-serialised for the upstream or translated
    '{"model": "claude-sonnet-\\ud800", "max_tokens": 5, "messages": [{"role": "user", '
    '"content": "hi"}]}',
    '{"model": "haiku", "max_tokens": 5, "messages": [{"role": "user", "content": "a\\ud800"}]}',
    '{"model": "haiku", "max_tokens": 5, "system": "be \\udfff kind", "messages": '
    '[{"role": "user", "content": "hi"}]}',
    '{"model": "qwen-local", "max_tokens": 5, "messages": [{"role": "user", "content": '
    '[{"type": "text", "text": "\\uDC00"}]}]}',
    '{"model": "haiku", "max_tokens": 5, "metadata": {"\\ud800": 1}, "messages": '
    '[{"role": "user", "content": "hi"}]}',
    # a low surrogate first, then a high one: two lone ones, not a pair
    '{"model": "haiku", "max_tokens": 5, "messages": [{"role": "user", "content": '
    '"\\udc00\\ud800"}]}',
]


@pytest.mark.parametrize("raw", LONE)
@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogates_are_400_never_500(setup: Setup, raw: str, stream: bool) -> None:
    if stream:
        raw = raw.replace('"max_tokens": 5', '"max_tokens": 5, "stream": true')
    assert "Unicode" in _anthropic_400(setup.post("/v1/messages", raw))
    chat = raw.replace('"max_tokens": 5, ', "")
    assert "Unicode" in _openai_400(setup.post("/v1/chat/completions", chat))
    _untouched(setup)


def test_a_lone_surrogate_in_translated_tool_arguments_is_400(setup: Setup) -> None:
    # The arguments are a JSON string inside the JSON body: the surrogate appears only
    # once the translation to Anthropic's format decodes them.
    raw = (
        '{"model": "haiku", "messages": [{"role": "user", "content": "hi"}, {"role": '
        '"assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", '
        '"function": {"name": "f", "arguments": "{\\"a\\": \\"\\\\ud800\\"}"}}]}, '
        '{"role": "tool", "tool_call_id": "c1", "content": "ok"}]}'
    )
    _openai_400(setup.post("/v1/chat/completions", raw))
    assert setup.upstream.requests == []
    assert all(v == 0 for v in setup.accountant.held.values())


def test_valid_surrogate_pairs_are_served(setup: Setup) -> None:
    raw = (
        '{"model": "haiku", "max_tokens": 5, "messages": [{"role": "user", "content": '
        '"\\ud83d\\ude00"}]}'
    )
    assert setup.post("/v1/messages", raw).status_code == 200
    chat = raw.replace('"max_tokens": 5, ', "")
    assert setup.post("/v1/chat/completions", chat).status_code == 200


@pytest.mark.parametrize(
    "value",
    ["9" * 309, str(2**63), str(2**63 - 100), str(2**31), str(MAX_TOKENS_CEILING + 1)],
)
def test_huge_max_tokens_are_400_and_reach_no_counter(setup: Setup, value: str) -> None:
    anthropic = f'{{"model": "haiku", "max_tokens": {value}, "messages": {HI}}}'
    assert "max_tokens" in _anthropic_400(setup.post("/v1/messages", anthropic))
    for field in ("max_tokens", "max_completion_tokens"):
        chat = f'{{"model": "sonnet", "{field}": {value}, "messages": {HI}}}'
        assert "max_tokens" in _openai_400(setup.post("/v1/chat/completions", chat))
    _untouched(setup)


def test_max_tokens_at_the_ceiling_is_served(setup: Setup) -> None:
    raw = f'{{"model": "qwen-local", "max_tokens": {MAX_TOKENS_CEILING}, "messages": {HI}}}'
    assert setup.post("/v1/messages", raw).status_code == 200


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-orchestra-agent", "a" * 300),
        ("x-orchestra-run", "r" * (MAX_NAME_CHARS + 1)),
        ("x-orchestra-step", "step\tone"),
        ("x-orchestra-agent", "caf\u00e9"),
        ("x-orchestra-run", " padded"),
    ],
)
def test_bad_attribution_headers_are_400(setup: Setup, header: str, value: str) -> None:
    body = json.dumps({"model": "haiku", "max_tokens": 5, "messages": MESSAGES})
    headers = {"content-type": "application/json", "x-api-key": setup.key}
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((header.encode(), value.encode("latin-1")))
    response = setup.client.post("/v1/messages", content=body.encode(), headers=raw_headers)
    assert header in _anthropic_400(response)
    chat = json.dumps({"model": "haiku", "messages": MESSAGES})
    response = setup.client.post("/v1/chat/completions", content=chat.encode(), headers=raw_headers)
    assert header in _openai_400(response)
    _untouched(setup)


def test_good_attribution_headers_are_recorded(setup: Setup) -> None:
    body = json.dumps({"model": "haiku", "max_tokens": 5, "messages": MESSAGES})
    response = setup.post(
        "/v1/messages",
        body,
        **{
            "x-orchestra-agent": "test-writer",
            "x-orchestra-run": "run_1",
            "x-orchestra-step": "red:2",
        },
    )
    assert response.status_code == 200
    entry = setup.accountant.entries[-1]
    assert (entry.agent, entry.run_id, entry.step) == ("test-writer", "run_1", "red:2")


# --- problem 4: /metrics -------------------------------------------------------------------


def test_metrics_label_the_resolved_tier_not_the_clients_string(setup: Setup) -> None:
    baseline = len(setup.metrics())
    for n in range(300):
        body = json.dumps({"model": f"claude-haiku-{n}-x", "max_tokens": 5, "messages": MESSAGES})
        assert setup.post("/v1/messages", body).status_code == 200
        unknown = json.dumps({"model": f"nope-{n}", "max_tokens": 5, "messages": MESSAGES})
        assert setup.post("/v1/messages", unknown).status_code == 404
    text = setup.metrics()
    assert 'orchestra_requests_total{endpoint="anthropic",status="200",model="haiku"} 300' in text
    assert "claude-haiku-1-x" not in text and "nope-1" not in text
    assert len(text) < baseline + 2_000  # bounded by the configuration, not the traffic


def test_a_scrape_is_whole_even_with_an_unencodable_label(setup: Setup) -> None:
    # A budget name is operator data; even one that cannot be encoded must not cut the
    # scrape short (it used to answer 200 with an empty body until restart).
    setup.accountant.budgets["team:\ud800"] = Decimal(5)
    setup.accountant.budgets['team:pay"ments\n'] = Decimal(5)
    response = setup.client.get("/metrics", headers={"x-api-key": setup.admin})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(response.content))
    text = response.text
    assert "orchestra_circuit_state" in text or "orchestra_upstream_errors_total" in text
    assert 'budget="team:\\\\ud800"' in text
    assert 'budget="team:pay\\"ments\\n"' in text
    assert text.endswith("\n")


# --- problem 2: the half-open trial is given back ----------------------------------------


def test_a_client_400_during_the_half_open_trial_does_not_stick_the_breaker(
    upstream: FakeUpstream,
) -> None:
    now = [1000.0]
    accountant = memory_accountant()
    config = gateway_config(
        upstream.base_url,
        retry={"max_attempts": 1},
        circuit={"failure_threshold": 1, "reset_after_s": 30},
    )

    async def no_sleep(_: float) -> None:
        return None

    deps = GatewayDeps(sleep=no_sleep, rand=lambda: 0.0, clock=lambda: now[0])
    app = make_app(config, accountant, deps)
    s = Setup(upstream, app, accountant)
    opus = {"model": "claude-opus-4-1", "max_tokens": 5, "messages": MESSAGES}
    with s.client:
        upstream.script(Fault(status=500))
        assert (
            s.client.post("/v1/messages", json=opus, headers={"x-api-key": s.key}).status_code
            >= 500
        )
        breaker = app.gateway.circuits.get("anthropic")
        assert breaker.state is CircuitState.OPEN
        now[0] += 31  # half-open: the next call is the trial
        # An OpenAI request Anthropic cannot serve: refused while its body is built.
        bad = {"model": "claude-opus-4-1", "n": 2, "messages": MESSAGES}
        refused = s.client.post(
            "/v1/chat/completions", json=bad, headers={"authorization": f"Bearer {s.key}"}
        )
        assert "'n'" in _openai_400(refused)
        assert accountant.entries[-1].outcome == "client_error"
        # The trial was given back: the next call is tried, and closes the circuit.
        served = s.client.post("/v1/messages", json=opus, headers={"x-api-key": s.key})
        assert served.status_code == 200, served.text
        assert breaker.state is CircuitState.CLOSED
        for _ in range(3):
            again = s.client.post("/v1/messages", json=opus, headers={"x-api-key": s.key})
            assert again.status_code == 200
