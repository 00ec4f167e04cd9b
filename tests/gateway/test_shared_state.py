"""Rate limits, circuit breakers and metrics shared through a real Redis, between gateway
cores in one process (each with its own client: as replicas see it), and what happens when
Redis does not answer. The multi-process tests are in tests/server/test_gateway_replicas.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from orchestra.accounting import RateLimit, RateLimitPolicy
from orchestra.config.gateway import CircuitSettings, SharedStateSettings
from orchestra.gateway import Caller, CircuitState
from orchestra.gateway.errors import LimitRefused, SharedStateUnavailable
from orchestra.gateway.metrics import GatewayMetrics
from orchestra.gateway.shared_breakers import SharedCircuitBoard
from orchestra.gateway.shared_limits import SharedRateLimits
from orchestra.gateway.shared_metrics import SharedMetrics, flatten, unflatten
from orchestra.gateway.shared_state import SharedState
from orchestra.providers.usage import Usage
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import ServerThread, gateway_config, make_app, memory_accountant
from tests.gateway.redis_state import UNREACHABLE_REDIS, redis_prefix, redis_url

ALICE = Caller(key_id="k1", developer="alice", team="payments")
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def settings() -> Iterator[SharedStateSettings]:
    url = redis_url()
    with redis_prefix(url) as prefix:
        yield SharedStateSettings(url=url, prefix=prefix)


def _limits(settings: SharedStateSettings, rpm: int) -> SharedRateLimits:
    return SharedRateLimits(SharedState(settings), RateLimitPolicy(key=RateLimit(rpm=rpm)))


async def _admitted(limits: SharedRateLimits, calls: int) -> int:
    admitted = 0
    for _ in range(calls):
        try:
            await limits.check(ALICE, 10)
        except LimitRefused as exc:
            assert exc.code == "rate_limit_exceeded" and exc.retry_after_s
            assert "key:k1 requests" in exc.message
        else:
            admitted += 1
    return admitted


def test_a_rate_limit_holds_in_total_over_replicas(settings: SharedStateSettings) -> None:
    async def scenario() -> tuple[int, int]:
        a, b = _limits(settings, 6), _limits(settings, 6)
        results = await asyncio.gather(_admitted(a, 10), _admitted(b, 10))
        await a.shared.aclose()
        await b.shared.aclose()
        return results[0], results[1]

    first, second = asyncio.run(scenario())
    assert first + second == 6  # not 6 per replica
    assert first > 0 and second > 0


def test_tokens_per_minute_count_over_replicas(settings: SharedStateSettings) -> None:
    async def scenario() -> None:
        policy = RateLimitPolicy(developer=RateLimit(tpm=100))
        a = SharedRateLimits(SharedState(settings), policy)
        b = SharedRateLimits(SharedState(settings), policy)
        await a.check(ALICE, 60)
        with pytest.raises(LimitRefused, match="developer:alice tokens"):
            await b.check(ALICE, 60)
        await b.check(ALICE, 40)  # a refused call counted nothing
        await a.shared.aclose()
        await b.shared.aclose()

    asyncio.run(scenario())


def _board(settings: SharedStateSettings, **circuit: float) -> SharedCircuitBoard:
    return SharedCircuitBoard(SharedState(settings), CircuitSettings(**circuit))  # type: ignore[arg-type]


def test_a_breaker_opened_on_one_replica_is_open_on_the_other(
    settings: SharedStateSettings,
) -> None:
    async def scenario() -> None:
        a = _board(settings, failure_threshold=3, reset_after_s=0.5)
        b = _board(settings, failure_threshold=3, reset_after_s=0.5)
        assert await b.get("anthropic").acquire()
        # Consecutive failures count over replicas: 2 on one and 1 on the other open it.
        await a.get("anthropic").failed("HTTP 503")
        await a.get("anthropic").failed("HTTP 503")
        await b.get("anthropic").failed("HTTP 502")
        assert b.get("anthropic").state is CircuitState.OPEN
        await asyncio.sleep(settings.sync_s)  # a's view of the closed circuit goes stale
        assert not await a.get("anthropic").acquire()
        assert a.get("anthropic").last_error == "HTTP 502"
        assert (await a.states())["anthropic"] is CircuitState.OPEN
        await asyncio.sleep(0.6)  # reset_after_s: one trial, on one replica only
        assert await b.get("anthropic").acquire()
        assert not await a.get("anthropic").acquire()
        await b.get("anthropic").succeeded()
        await asyncio.sleep(settings.sync_s)
        assert await a.get("anthropic").acquire()
        assert (await a.states())["anthropic"] is CircuitState.CLOSED
        for board in (a, b):
            await board.shared.aclose()

    asyncio.run(scenario())


def test_a_half_open_trial_given_back_goes_to_the_next_caller(
    settings: SharedStateSettings,
) -> None:
    async def scenario() -> None:
        a = _board(settings, failure_threshold=1, reset_after_s=0.2)
        b = _board(settings, failure_threshold=1, reset_after_s=0.2)
        await a.get("up").failed("timeout")
        await asyncio.sleep(0.3)
        assert await a.get("up").acquire()
        assert not await b.get("up").acquire()
        a.get("up").release()  # cancelled: the trial goes back (in the background)
        await asyncio.sleep(0.05)
        assert await b.get("up").acquire()
        for board in (a, b):
            await board.shared.aclose()

    asyncio.run(scenario())


def _sample_metrics(status: int, cost: str) -> GatewayMetrics:
    m = GatewayMetrics()
    m.request("anthropic", status, "haiku", 0.03)
    m.request("openai", 429, "", 0.001)
    m.usage("claude-haiku-4-5", Usage(input_tokens=10, output_tokens=3), Decimal(cost))
    m.upstream_error("anthropic", "connection error: OSError")
    return m


def test_metrics_survive_the_trip_through_redis_hashes() -> None:
    m = _sample_metrics(200, "0.000025")
    hashes: dict[str, dict[str, str]] = {}
    for (name, field), value in flatten(m).items():
        hashes.setdefault(name, {})[field] = str(value)
    assert unflatten(hashes).render({}, []) == m.render({}, [])


def test_metrics_show_every_replica(settings: SharedStateSettings) -> None:
    async def scenario() -> str:
        a_metrics, b_metrics = _sample_metrics(200, "0.5"), _sample_metrics(200, "0.25")
        a = SharedMetrics(SharedState(settings), a_metrics)
        b = SharedMetrics(SharedState(settings), b_metrics)
        assert await b.flush()
        b_metrics.request("anthropic", 200, "haiku", 0.2)  # after b's flush: not yet seen
        totals = await a.totals()
        assert totals is not None
        assert await b.flush() and await a.flush()  # nothing counted twice
        again = await a.totals()
        assert again is not None
        for m in (a, b):
            await m.shared.aclose()
        return totals.render({}, []) + "\n---\n" + again.render({}, [])

    first, _, second = asyncio.run(scenario()).partition("\n---\n")
    assert 'orchestra_requests_total{endpoint="anthropic",status="200",model="haiku"} 2' in first
    assert 'orchestra_cost_usd_total{model="claude-haiku-4-5"} 0.75' in first
    assert 'orchestra_tokens_total{model="claude-haiku-4-5",kind="input"} 20' in first
    assert 'orchestra_requests_total{endpoint="anthropic",status="200",model="haiku"} 3' in second
    assert 'orchestra_request_duration_seconds_count{endpoint="anthropic"} 3' in second
    assert 'orchestra_upstream_errors_total{provider="anthropic"' in second


def test_redis_down_fail_open_keeps_this_replicas_own_limits() -> None:
    down = SharedStateSettings(url=UNREACHABLE_REDIS, prefix="x", retry_after_s=60)

    async def scenario() -> tuple[int, dict[str, int], bool]:
        limits = _limits(down, 3)
        admitted = await _admitted(limits, 5)
        return admitted, limits.shared.errors, limits.shared.up

    admitted, errors, up = asyncio.run(scenario())
    assert admitted == 3  # counted in this process meanwhile
    assert errors == {"rate_limit": 5} and not up  # 1 failed call, then 4 skipped (retry_after_s)


def test_redis_down_fail_closed_refuses_with_a_503() -> None:
    down = SharedStateSettings(url=UNREACHABLE_REDIS, prefix="x", on_error="closed")

    async def scenario() -> None:
        with pytest.raises(SharedStateUnavailable) as caught:
            await _limits(down, 3).check(ALICE, 1)
        assert caught.value.status == 503 and caught.value.retry_after_s == 1.0
        board = _board(down)
        with pytest.raises(SharedStateUnavailable):
            await board.get("anthropic").acquire()

    asyncio.run(scenario())


def _call(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/messages",
        headers={"x-api-key": key},
        json={"model": "haiku", "max_tokens": 5, "messages": MESSAGES},
        timeout=10,
    )


@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_a_gateway_whose_redis_is_down_answers_per_its_setting(
    upstream: FakeUpstream, on_error: str
) -> None:
    accountant = memory_accountant()
    shared = {"url": UNREACHABLE_REDIS, "on_error": on_error}
    config = gateway_config(upstream.base_url, shared_state=shared, limits={"key": {"rpm": 2}})
    server = ServerThread(make_app(config, accountant)).start()
    key, admin = accountant.add_key("alice", "payments"), accountant.add_key("root", admin=True)
    try:
        statuses = [_call(server.base_url, key).status_code for _ in range(3)]
        ready = httpx.get(f"{server.base_url}/readyz").json()
        metrics = httpx.get(f"{server.base_url}/metrics", headers={"x-api-key": admin}).text
    finally:
        server.stop()
    if on_error == "open":
        assert statuses == [200, 200, 429]  # the limit holds on this replica's own counts
    else:
        assert statuses == [503, 503, 503]
    assert ready["shared_state"] == "unreachable" and ready["status"] == "ready"
    assert "orchestra_shared_state_up 0" in metrics
    assert 'orchestra_shared_state_errors_total{what="rate_limit"} 3' in metrics


def test_a_gateway_with_redis_shares_its_limits_and_metrics(
    upstream: FakeUpstream, settings: SharedStateSettings
) -> None:
    accountant = memory_accountant()
    shared = {"url": settings.url, "prefix": settings.prefix, "metrics_flush_s": 0.1}
    config = gateway_config(upstream.base_url, shared_state=shared, limits={"key": {"rpm": 3}})
    first = ServerThread(make_app(config, accountant)).start()
    second = ServerThread(make_app(config, accountant)).start()
    key, admin = accountant.add_key("alice", "payments"), accountant.add_key("root", admin=True)
    try:
        statuses = [_call(s.base_url, key).status_code for s in (first, second) * 2]
        time.sleep(0.5)  # the second replica adds its counts every metrics_flush_s
        text = httpx.get(f"{first.base_url}/metrics", headers={"x-api-key": admin}).text
    finally:
        first.stop()
        second.stop()
    assert statuses == [200, 200, 200, 429]
    assert 'orchestra_requests_total{endpoint="anthropic",status="200",model="haiku"} 3' in text
    assert 'orchestra_requests_total{endpoint="anthropic",status="429",model="haiku"} 1' in text
    assert "orchestra_shared_state_up 1" in text


def test_fail_closed_refuses_a_call_no_limit_applies_to_with_a_503(upstream: FakeUpstream) -> None:
    # No rate limit configured: the circuit breaker is what Redis is needed for.
    accountant = memory_accountant()
    shared = {"url": UNREACHABLE_REDIS, "on_error": "closed"}
    server = ServerThread(
        make_app(gateway_config(upstream.base_url, shared_state=shared), accountant)
    ).start()
    key = accountant.add_key("alice", "payments")
    try:
        answer = _call(server.base_url, key)
    finally:
        server.stop()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["type"] == "overloaded_error"
    assert "shared state (Redis) is unreachable" in answer.json()["error"]["message"]
    assert upstream.requests == []  # nothing was sent while the breaker could not be read
