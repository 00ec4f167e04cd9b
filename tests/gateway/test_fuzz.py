"""Hypothesis-generated bodies and headers: always a clear 4xx (or a served call), never a
500, never a crash, reservations always released.

In-process (ASGI) and fast, for ``make test``. ``ORCHESTRA_FUZZ_SCALE=N`` multiplies the
number of examples; the long run against a real server is ``python -m bench.fuzz``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from orchestra.gateway import MemoryAccountant
from orchestra.testing import FakeUpstream
from tests.gateway.fuzz_strategies import FuzzRequest, check_answer, fuzz_requests
from tests.gateway.helpers import gateway_config, make_app, memory_accountant

SCALE = int(os.environ.get("ORCHESTRA_FUZZ_SCALE", "1"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
models = (
    st.sampled_from(["haiku", "qwen-local", "nope", "", "claude-3-5-haiku-latest"])
    | st.text(max_size=12)
    | st.integers()
    | st.none()
)
messages = st.one_of(
    st.just([{"role": "user", "content": "hi"}]),
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"])},
            optional={"content": json_values},
        ),
        max_size=3,
    ),
    json_values,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": models,
        "max_tokens": st.integers(-5, 2000) | st.none() | st.text(max_size=3),
        "messages": messages,
        "stream": st.booleans() | st.none() | st.integers(),
        "system": json_values,
        "tools": json_values,
        "stream_options": json_values,
    },
)


@pytest.fixture(scope="module")
def fuzz_setup() -> Iterator[tuple[TestClient, MemoryAccountant, str]]:
    with FakeUpstream.start() as upstream:
        accountant = memory_accountant()
        accountant.budgets["developer:alice"] = Decimal(1000)
        key = accountant.add_key("alice", "payments")
        app = make_app(gateway_config(upstream.base_url), accountant)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, accountant, key


def _check(response: Any, anthropic_format: bool) -> None:
    assert response.status_code < 500 or response.status_code in (502, 503, 504, 529), (
        response.status_code,
        response.text,
    )
    if response.status_code >= 400:
        body = response.json()
        if anthropic_format:
            assert body["type"] == "error" and body["error"]["message"]
        else:
            assert body["error"]["message"]


@settings(
    max_examples=150 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=bodies,
    path=st.sampled_from(["/v1/messages", "/v1/chat/completions", "/v1/messages/count_tokens"]),
)
def test_random_json_bodies(
    fuzz_setup: tuple[TestClient, MemoryAccountant, str], body: dict[str, Any], path: str
) -> None:
    client, accountant, key = fuzz_setup
    response = client.post(
        path,
        content=json.dumps(body),
        headers={"x-api-key": key, "content-type": "application/json"},
    )
    _check(response, not path.startswith("/v1/chat"))
    assert all(v == 0 for v in accountant.held.values())  # every reservation settled or released


@settings(
    max_examples=100 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    raw=st.binary(max_size=200),
    ctype=st.sampled_from(
        ["application/json", "text/plain", "", "application/json; charset=utf-8"]
    ),
    auth=st.sampled_from(["good", "bad", "none", "bearer"]),
    path=st.sampled_from(
        ["/v1/messages", "/v1/chat/completions", "/v1/models", "/v1/orchestra/spend", "/v1/unknown"]
    ),
)
def test_random_bytes_headers_and_paths(
    fuzz_setup: tuple[TestClient, MemoryAccountant, str],
    raw: bytes,
    ctype: str,
    auth: str,
    path: str,
) -> None:
    client, _, key = fuzz_setup
    headers = {"content-type": ctype} if ctype else {}
    if auth == "good":
        headers["x-api-key"] = key
    elif auth == "bad":
        headers["x-api-key"] = "orc_wrong"
    elif auth == "bearer":
        headers["authorization"] = f"Bearer {key}"
    response = client.post(path, content=raw, headers=headers)
    assert response.status_code < 500, response.text
    assert response.json()


def test_specific_bad_inputs_get_the_right_status(
    fuzz_setup: tuple[TestClient, MemoryAccountant, str],
) -> None:
    client, _, key = fuzz_setup
    good = {"x-api-key": key, "content-type": "application/json"}
    assert client.post("/v1/messages", content=b"{", headers=good).status_code == 400
    assert client.post("/v1/messages", content=b"[]", headers=good).status_code == 400
    assert (
        client.post(
            "/v1/messages", content=b"{}", headers={**good, "content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert (
        client.post(
            "/v1/messages", content=b"{}", headers={"content-type": "application/json"}
        ).status_code
        == 401
    )
    big = b'{"model": "haiku", "pad": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    too_large = client.post("/v1/messages", content=big, headers=good)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["type"] == "request_too_large"
    missing = client.post(
        "/v1/chat/completions", json={"model": "gpt-9", "messages": []}, headers=good
    )
    assert missing.status_code == 404
    assert (
        "gpt-9" in missing.json()["error"]["message"]
        and "haiku" in missing.json()["error"]["message"]
    )
    assert missing.json()["error"]["code"] == "model_not_found"
    assert client.get("/v1/messages", headers=good).status_code == 405


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[TestClient, MemoryAccountant, str, str]]:
    with FakeUpstream.start() as upstream:
        accountant = memory_accountant()
        accountant.budgets["developer:alice"] = Decimal(1000)
        key = accountant.add_key("alice", "payments")
        admin = accountant.add_key("root", None, admin=True)
        app = make_app(gateway_config(upstream.base_url), accountant)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, accountant, key, admin


def _send(client: TestClient, request: FuzzRequest) -> Any:
    return client.request(
        request.method,
        request.path + request.query,
        content=request.body,
        headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
    )


@settings(
    max_examples=150 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_endpoint_answers_in_the_clients_format(
    endpoints: tuple[TestClient, MemoryAccountant, str, str], data: st.DataObject
) -> None:
    """Bodies (JSON of every shape, lone surrogates, huge numbers, other encodings, raw
    bytes, large strings), headers (keys, attribution, content types) and query strings on
    every endpoint: never a 5xx for the client's input, a well-formed error in its format,
    reservations released, and the gateway still serving."""
    client, accountant, key, admin = endpoints
    request = data.draw(fuzz_requests(key, admin))
    response = _send(client, request)
    check_answer(
        request, response.status_code, response.headers.get("content-type", ""), response.content
    )
    assert all(v == 0 for v in accountant.held.values())
    assert client.get("/healthz").status_code == 200


def test_after_the_fuzzing_the_metrics_stay_whole_and_bounded(
    endpoints: tuple[TestClient, MemoryAccountant, str, str],
) -> None:
    client, _, _, admin = endpoints
    response = client.get("/metrics", headers={"authorization": f"Bearer {admin}"})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(response.content))
    text = response.content.decode()
    models = {
        line.split('model="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("orchestra_requests_total")
    }
    # Only what names resolved to: configured tiers and models (or "" before resolution).
    assert models <= {
        "",
        "opus",
        "sonnet",
        "haiku",
        "claude-opus-4-1",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "qwen-local",
    }, models
