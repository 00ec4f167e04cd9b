"""Per-upstream concurrency limits, bounded queues and saturation fallback: the limiter with
time driven by hand, then a real gateway between a local fake host of known capacity and a
cloud fake."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from orchestra.config import UpstreamLimits, parse_config
from orchestra.gateway import GatewayApp, MemoryAccountant
from orchestra.gateway.upstream_limits import (
    Saturation,
    UpstreamLimiter,
    UpstreamLimiters,
    poll_host_metrics,
)
from orchestra.testing import FakeUpstream, HostCapacity
from tests.gateway.helpers import ServerThread, make_app, memory_accountant


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limits(**kw: Any) -> UpstreamLimits:
    return UpstreamLimits(**{"max_concurrency": 2, "max_queue": 2, **kw})


def test_calls_beyond_the_concurrency_wait_in_fifo_order_and_beyond_the_queue_are_refused() -> None:
    async def scenario() -> None:
        limiter = UpstreamLimiter(limits())
        assert await limiter.acquire() is None
        assert await limiter.acquire() is None
        admitted: list[int] = []

        async def wait(i: int) -> None:
            assert await limiter.acquire() is None
            admitted.append(i)

        waiting = [asyncio.create_task(wait(i)) for i in (3, 4)]
        await asyncio.sleep(0)
        assert (limiter.in_flight, limiter.queue_depth) == (2, 2)
        assert await limiter.acquire() is Saturation.QUEUE_FULL
        limiter.release()
        await asyncio.sleep(0)
        assert admitted == [3]
        limiter.release()
        await asyncio.gather(*waiting)
        assert admitted == [3, 4]
        assert (limiter.in_flight, limiter.queue_depth, limiter.peak_in_flight) == (2, 0, 2)
        limiter.release()
        limiter.release()
        assert limiter.in_flight == 0

    asyncio.run(scenario())


def test_a_wait_longer_than_the_queue_timeout_gives_up_and_leaves_the_queue() -> None:
    async def scenario() -> None:
        limiter = UpstreamLimiter(limits(max_concurrency=1, queue_timeout_s=0.05))
        assert await limiter.acquire() is None
        assert await limiter.acquire() is Saturation.QUEUE_TIMEOUT
        assert (limiter.in_flight, limiter.queue_depth) == (1, 0)
        limiter.release()
        assert limiter.in_flight == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_queue_and_a_slot_handed_to_it_is_passed_on() -> None:
    async def scenario() -> None:
        limiter = UpstreamLimiter(limits(max_concurrency=1))
        assert await limiter.acquire() is None
        gone = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert limiter.queue_depth == 0

        # Handed the slot and cancelled in the same turn of the loop: the slot moves on.
        handed = asyncio.create_task(limiter.acquire())
        after = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        limiter.release()  # hands the slot to `handed`
        handed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handed
        assert await after is None
        assert (limiter.in_flight, limiter.queue_depth) == (1, 0)

    asyncio.run(scenario())


def test_a_slow_upstream_gets_one_call_at_a_time_until_it_recovers() -> None:
    async def scenario() -> None:
        clock = Clock()
        limiter = UpstreamLimiter(
            limits(slow_after_s=1.0, latency_window=3, latency_max_age_s=30), clock
        )
        for seconds in (0.2, 2.5, 3.0):
            limiter.observe(seconds)
        assert limiter.median_latency_s() == 2.5 and limiter.slow()
        assert await limiter.acquire() is None  # the probe that measures it again
        assert await limiter.acquire() is Saturation.SLOW  # nothing queued behind it
        limiter.observe(0.3)
        limiter.observe(0.4)  # the window keeps the last three: 3.0, 0.3, 0.4
        limiter.release()
        assert limiter.median_latency_s() == 0.4 and not limiter.slow()
        # A quiet host is not slow: old latencies are forgotten.
        limiter.observe(5.0)
        limiter.observe(5.0)
        assert limiter.slow()
        clock.now += 31
        assert limiter.median_latency_s() is None and not limiter.slow()

    asyncio.run(scenario())


def test_a_reload_keeps_slots_and_a_higher_limit_admits_waiting_calls() -> None:
    async def scenario() -> None:
        board = UpstreamLimiters()
        board.configure({"local": limits(max_concurrency=1)})
        limiter = board.limiters["local"]
        assert await limiter.acquire() is None
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        board.configure({"local": limits(max_concurrency=2)})
        assert board.limiters["local"] is limiter
        assert await waiter is None
        assert (limiter.in_flight, limiter.queue_depth) == (2, 0)
        board.configure({})  # limits removed: no limiter; calls in flight still release
        assert board.limiters == {}
        limiter.release()
        limiter.release()
        assert limiter.in_flight == 0

    asyncio.run(scenario())


# --- through a real gateway -------------------------------------------------------------

LOCAL = HostCapacity(slots=10, tokens_per_s=4, queue=0, max_output_tokens=4)
"""Room for every call at once, so the fake's peak shows what the gateway let through; each
reply takes 1 s (4 tokens at 4 tokens/s), long enough for ten calls to arrive meanwhile."""


@dataclass
class Hybrid:
    local: FakeUpstream
    cloud: FakeUpstream
    app: GatewayApp
    server: ServerThread
    accountant: MemoryAccountant
    key: str


def hybrid_yaml(local_url: str, cloud_url: str, allow_costlier: bool, **limit: Any) -> str:
    data = {
        "providers": {
            "cloud": {"kind": "anthropic", "base_url": cloud_url, "timeout_s": 10},
            "local": {
                "kind": "openai",
                "base_url": local_url + "/v1",
                "timeout_s": 10,
                "limits": limit,
            },
        },
        "models": {
            "claude-haiku-4-5": {"provider": "cloud"},
            "qwen-local": {"provider": "local", "upstream_name": "qwen2.5-coder"},
        },
        "tiers": {"haiku": {"model": "qwen-local", "fallbacks": ["claude-haiku-4-5"]}},
        "gateway": {
            "key_cache_ttl_s": 0,
            "allow_costlier_fallback": allow_costlier,
            "retry": {"max_attempts": 1},
        },
    }
    return str(yaml.safe_dump(data))


@pytest.fixture
def hybrid(request: pytest.FixtureRequest) -> Iterator[Hybrid]:
    allow_costlier, limit, *shape = request.param
    with FakeUpstream.start(capacity=(shape or [LOCAL])[0]) as local, FakeUpstream.start() as cloud:
        if limit.get("metrics_url") == "from-test":
            limit = {**limit, "metrics_url": f"{local.base_url}/metrics"}
        accountant = memory_accountant()
        config = parse_config(
            hybrid_yaml(local.base_url, cloud.base_url, allow_costlier, **limit), environ={}
        )
        app = make_app(config, accountant)
        server = ServerThread(app).start()
        try:
            yield Hybrid(local, cloud, app, server, accountant, accountant.add_key("a", "t"))
        finally:
            server.stop()


async def _calls(url: str, key: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(i: int) -> httpx.Response:
            body = {
                "model": "haiku",
                "max_tokens": 4,
                "stream": i % 2 == 0,  # a stream holds its slot until its end
                "messages": [{"role": "user", "content": f"call {i}"}],
            }
            response = await client.post("/v1/messages", json=body, headers={"x-api-key": key})
            await response.aread()
            return response

        return list(await asyncio.gather(*(one(i) for i in range(n))))


@pytest.mark.parametrize(
    "hybrid",
    [(True, {"max_concurrency": 2, "max_queue": 2, "queue_timeout_s": 20})],
    indirect=True,
)
def test_ten_calls_at_once_the_local_host_never_sees_more_than_two_the_rest_go_to_the_cloud(
    hybrid: Hybrid,
) -> None:
    responses = asyncio.run(_calls(hybrid.server.base_url, hybrid.key, 10))
    assert [r.status_code for r in responses] == [200] * 10
    served = Counter(r.headers["x-orchestra-served-model"] for r in responses)
    # Two at once, two waiting in the queue (served one service time later), six to the cloud.
    assert served == {"qwen-local": 4, "claude-haiku-4-5": 6}
    assert hybrid.local.slot_host is not None
    assert hybrid.local.slot_host.peak == 2  # what the host itself saw at once
    assert len(hybrid.cloud.requests) == 6
    fallbacks = [r.headers.get("x-orchestra-fallback") for r in responses]
    assert fallbacks.count("1") == 6

    # The ledger's path says why: the local host was saturated (its queue full).
    paths = Counter(
        tuple((a.model, a.error) for a in entry.attempts) for entry in hybrid.accountant.entries
    )
    assert paths == {
        (("qwen-local", None),): 4,
        (("qwen-local", "saturated (queue_full)"), ("claude-haiku-4-5", None)): 6,
    }
    gateway = hybrid.app.gateway
    limiter = gateway.limiters.limiters["local"]
    assert (limiter.in_flight, limiter.queue_depth, limiter.peak_in_flight) == (0, 0, 2)
    assert gateway.limiters.saturated == {("local", "queue_full"): 6}
    assert limiter.median_latency_s() is not None  # its calls' latencies were measured

    admin = hybrid.accountant.add_key("root", None, admin=True)
    text = httpx.get(
        f"{hybrid.server.base_url}/metrics", headers={"authorization": f"Bearer {admin}"}
    ).text
    assert 'orchestra_upstream_in_flight{provider="local"} 0' in text
    assert 'orchestra_upstream_queue_depth{provider="local"} 0' in text
    assert 'orchestra_upstream_saturated_total{provider="local",reason="queue_full"} 6' in text


@pytest.mark.parametrize("hybrid", [(False, {"max_concurrency": 1, "max_queue": 0})], indirect=True)
def test_a_saturated_host_without_an_allowed_fallback_answers_529_saying_so(
    hybrid: Hybrid,
) -> None:
    responses = asyncio.run(_calls(hybrid.server.base_url, hybrid.key, 3))
    assert sorted(r.status_code for r in responses) == [200, 529, 529]
    refused = next(r for r in responses if r.status_code == 529).json()["error"]
    assert refused["type"] == "overloaded_error"
    assert (
        "upstream 'local' of model 'qwen-local' is saturated (queue full)" in (refused["message"])
    )
    assert hybrid.cloud.requests == []  # the cloud model costs more: never a silent switch
    failed = [e for e in hybrid.accountant.entries if e.outcome != "ok"]
    assert [(a.model, a.error) for a in failed[0].attempts] == [
        ("qwen-local", "saturated (queue_full)"),
        ("claude-haiku-4-5", "fallback refused: costlier"),
    ]


def test_a_host_whose_own_queue_is_long_is_saturated_while_the_reading_is_fresh() -> None:
    async def scenario() -> None:
        clock = Clock()
        settings = limits(metrics_url="http://host/metrics", metrics_interval_s=1.0)
        limiter = UpstreamLimiter(settings, clock)
        limiter.host_read(2)  # two requests wait at the host (other clients' included)
        assert await limiter.acquire() is Saturation.HOST_QUEUE
        clock.now += 3.5  # no reading for more than three intervals: not trusted
        assert await limiter.acquire() is None
        limiter.host_read(0)
        assert await limiter.acquire() is None
        limiter.host_read(None)  # unreadable: judged without it
        assert limiter.in_flight == 2 and not limiter.host_saturated()

    asyncio.run(scenario())


def test_the_poller_reads_each_host_at_its_interval_and_survives_a_failing_one() -> None:
    board = UpstreamLimiters()
    board.configure(
        {
            "gpu": limits(metrics_url="http://gpu/metrics", metrics_interval_s=0.05),
            "down": limits(metrics_url="http://down/metrics"),
            "plain": limits(),
        }
    )
    reads: list[str] = []

    async def get(url: str) -> str:
        reads.append(url)
        if "down" in url:
            raise httpx.ConnectError("refused")
        return "# llama.cpp\nllamacpp:requests_deferred 3\nllamacpp:requests_processing 2\n"

    async def scenario() -> None:
        task = asyncio.create_task(poll_host_metrics(board, get))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert board.limiters["gpu"].host_queue == 3.0
    assert board.limiters["down"].host_queue is None
    assert reads.count("http://down/metrics") == 1  # its interval is 1 s
    assert reads.count("http://gpu/metrics") >= 3


@pytest.mark.parametrize(
    "hybrid",
    [
        (
            True,
            {"max_concurrency": 4, "metrics_interval_s": 0.05, "metrics_url": "from-test"},
            HostCapacity(slots=1, tokens_per_s=4, queue=10, max_output_tokens=4),
        )
    ],
    indirect=True,
)
def test_a_host_loaded_by_other_clients_sends_the_gateways_calls_to_the_cloud(
    hybrid: Hybrid,
) -> None:
    """The host's own metrics say requests wait there (sent by someone else, so the
    gateway's own count knows nothing of them): the gateway's call goes to the cloud."""
    limiter = hybrid.app.gateway.limiters.limiters["local"]
    body = {
        "model": "qwen2.5-coder",
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "x"}],
    }

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            others = [
                asyncio.create_task(
                    client.post(f"{hybrid.local.base_url}/v1/chat/completions", json=body)
                )
                for _ in range(LOCAL.slots + 2)
            ]
            await _until(lambda: (limiter.host_queue or 0) >= 1)  # the poller saw the queue
            busy = await _one(client, hybrid)
            await asyncio.gather(*others)
            await _until(lambda: limiter.host_queue == 0)
            idle = await _one(client, hybrid)
            return busy, idle

    busy, idle = asyncio.run(scenario())
    assert busy.headers["x-orchestra-served-model"] == "claude-haiku-4-5"
    assert idle.headers["x-orchestra-served-model"] == "qwen-local"
    assert hybrid.app.gateway.limiters.saturated == {("local", "host_queue"): 1}


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not reached in 10 s")


async def _one(client: httpx.AsyncClient, hybrid: Hybrid) -> httpx.Response:
    body = {"model": "haiku", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    response = await client.post(
        f"{hybrid.server.base_url}/v1/messages", json=body, headers={"x-api-key": hybrid.key}
    )
    assert response.status_code == 200, response.text
    return response
