"""Routing tables, backoff and the circuit breaker, with time driven by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra.config.gateway import CircuitSettings
from orchestra.errors import ConfigError
from orchestra.gateway import (
    Caller,
    CallRecord,
    CircuitBreaker,
    CircuitState,
    RetryPolicy,
    RoutingSnapshot,
    family_tier,
)
from orchestra.gateway.errors import UnknownModel
from orchestra.gateway.resilience import CircuitBoard, parse_retry_after
from orchestra.gateway.upstream import CallPlan, UpstreamCaller
from tests.gateway.helpers import gateway_config


@pytest.mark.parametrize(
    ("name", "tier"),
    [
        ("claude-sonnet-4-5-20250929", "sonnet"),
        ("claude-3-5-haiku-latest", "haiku"),
        ("claude-opus-4-1", "opus"),
        ("claude-3-opus-20240229", "opus"),
        ("gpt-4o", None),
        ("claude-instant-1", None),
        ("my-sonnet", None),
    ],
)
def test_family_names(name: str, tier: str | None) -> None:
    assert family_tier(name) == tier


def test_resolution_order_and_team_override() -> None:
    routing = RoutingSnapshot.from_config(gateway_config("http://up"))
    assert routing.resolve("big").primary.model == "claude-opus-4-1"  # model alias
    assert routing.resolve("claude-opus-4-1").tier is None  # a concrete model wins
    route = routing.resolve("claude-opus-4-9-20270101")
    assert route.tier == "opus"
    assert [t.model for t in route.chain] == ["claude-opus-4-1", "claude-sonnet-4-5"]
    assert routing.resolve("sonnet", "local-team").primary.model == "qwen-local"
    assert routing.resolve("sonnet", "other-team").primary.model == "claude-sonnet-4-5"
    with pytest.raises(UnknownModel) as caught:
        routing.resolve("gpt-5")
    assert "gpt-5" in caught.value.message and "haiku" in (caught.value.hint or "")


def test_dangling_names_are_configuration_errors() -> None:
    from orchestra.config import parse_config

    bad = parse_config(
        "providers: {p: {kind: openai, base_url: 'http://x'}}\n"
        "models: {m: {provider: p}}\ntiers: {haiku: {model: m, fallbacks: [ghost]}}\n",
        environ={},
    )
    with pytest.raises(ConfigError, match="ghost"):
        RoutingSnapshot.from_config(bad)


@given(
    attempt=st.integers(1, 20),
    base=st.floats(0, 10),
    cap=st.floats(0, 60),
    r=st.floats(0, 1),
)
def test_backoff_is_bounded_full_jitter(attempt: int, base: float, cap: float, r: float) -> None:
    policy = RetryPolicy(max_attempts=50, base_delay_s=base, max_delay_s=cap)
    delay = policy.delay(attempt, None, lambda: r)
    assert delay is not None
    assert 0 <= delay <= min(cap, base * 2 ** (attempt - 1)) + 1e-9


def test_retry_after_is_honoured_but_bounded() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_after_s=10)
    assert policy.delay(1, 4.0, lambda: 0.0) == 4.0
    assert policy.delay(1, 11.0, lambda: 0.0) is None  # too long: move down the chain
    assert policy.delay(3, None, lambda: 0.0) is None  # attempts used up
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None


def test_circuit_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=10, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow() and breaker.state is CircuitState.CLOSED
    breaker.failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    now[0] = 10.5
    assert breaker.allow()  # the one trial call
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow()  # only one trial at a time
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    now[0] = 21.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()


def test_circuit_board_keeps_one_breaker_per_upstream() -> None:
    board = CircuitBoard(CircuitSettings(failure_threshold=1))
    board.get("a").failure()
    assert board.get("a").state is CircuitState.OPEN
    assert board.get("b").state is CircuitState.CLOSED


def _half_open_caller(post: object) -> tuple[object, CircuitBreaker, object]:
    """An upstream caller whose ``anthropic`` breaker is half-open (the next call is the
    trial), with ``post`` as its transport's post."""
    now = [0.0]

    class Transport:
        closed = False

        async def post(self, *args: object, **kwargs: object) -> object:
            return await post()  # type: ignore[operator]

    board = CircuitBoard(CircuitSettings(failure_threshold=1, reset_after_s=10), lambda: now[0])
    breaker = board.get("anthropic")
    breaker.failure()
    now[0] = 11.0
    caller = UpstreamCaller(
        client=lambda: Transport(),  # type: ignore[arg-type, return-value]
        circuits=board,
        policy=RetryPolicy(max_attempts=1),
        first_byte_timeout_s=5,
        allow_costlier_fallback=False,
        cost=lambda model, usage: Decimal(0),
        credential=lambda target: None,
        sleep=asyncio.sleep,
        clock=lambda: now[0],
    )
    route = RoutingSnapshot.from_config(gateway_config("http://127.0.0.1:9")).resolve(
        "claude-haiku-4-5"
    )
    return caller, breaker, route


def _record() -> object:
    return CallRecord("r1", datetime.now(UTC), Caller("k", "alice", None), "anthropic", "m")


def test_a_request_that_cannot_be_built_gives_the_half_open_trial_back() -> None:

    async def never() -> object:
        raise AssertionError("the upstream must not be called")

    caller, breaker, route = _half_open_caller(never)

    def build(target: object) -> tuple[str, bytes]:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    plan = CallPlan(build=build, query="", client_headers={})
    with pytest.raises(UnicodeEncodeError):
        asyncio.run(caller.open(route, plan, _record()))  # type: ignore[attr-defined]
    assert breaker.state is CircuitState.HALF_OPEN and not breaker.trial_in_flight
    assert breaker.allow()  # the next call is the trial


def test_a_cancelled_trial_call_gives_the_half_open_trial_back() -> None:

    async def hang() -> object:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    caller, breaker, route = _half_open_caller(hang)
    plan = CallPlan(build=lambda t: ("/v1/messages", b"{}"), query="", client_headers={})

    async def scenario() -> None:
        task = asyncio.ensure_future(caller.open(route, plan, _record()))  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
        assert breaker.trial_in_flight
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not breaker.trial_in_flight and breaker.allow()
