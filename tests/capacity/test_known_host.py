"""The planner against the fake host of known capacity, through a real gateway on loopback:
its maximum concurrency under the SLO lands within 10% of the analytic value."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from orchestra.capacity import (
    SLO,
    RequestSample,
    SweepSettings,
    TargetUnreachable,
    measure_level,
    plan_capacity,
)
from orchestra.testing import DropMidStream, FakeUpstream, Reply, StreamError
from tests.capacity.conftest import HOST, SLO_S, TOKENS, Stack
from tests.gateway.helpers import gateway_config, make_app, memory_accountant, serve


def _settings(stack: Stack, **overrides: object) -> SweepSettings:
    values: dict[str, object] = {
        "gateway_url": stack.gateway.base_url,
        "key": stack.key,
        "model": "qwen-local",
        "slo": SLO(seconds=SLO_S, percentile=90),
        "ceiling": HOST.slots + HOST.queue,
        "duration_s": 0.5,
        "max_tokens": TOKENS,
        "metrics_url": stack.upstream.base_url + "/metrics",
    }
    values.update(overrides)
    return SweepSettings(**values)  # type: ignore[arg-type]


def test_the_analytic_answer_of_the_known_host() -> None:
    assert HOST.service_s(TOKENS) == pytest.approx(0.4)
    assert HOST.max_concurrency(SLO_S, TOKENS) == 16
    assert HOST.max_concurrency(10.0, TOKENS) == 20  # then the queue bounds it


def test_the_planner_finds_the_known_capacity_within_ten_percent(stack: Stack) -> None:
    plan = asyncio.run(plan_capacity(_settings(stack), []))

    known = HOST.max_concurrency(SLO_S, TOKENS)
    assert plan.max_concurrency is not None
    assert abs(plan.max_concurrency - known) <= 0.1 * known
    # The curve rises with concurrency, and past the slots the host queued requests.
    by_level = {level.concurrency: level for level in plan.levels}
    assert by_level[1].e2e(90) < SLO_S < by_level[20].e2e(90)
    assert by_level[1].ttft(50) is not None and by_level[1].itl(50) is not None
    assert by_level[16].gauges.queue_max is not None and by_level[16].gauges.queue_max > 0
    # Goodput at the best level: 8 slots of 0.4 s replies is at most 20 requests/s.
    assert plan.goodput is not None and 10 < plan.goodput <= 21
    # With no ledger history, developers per host and payback are unknown, and say why.
    assert plan.developers_per_host is None
    assert plan.peak.reason and "no calls" in plan.peak.reason
    assert plan.payback.months is None


def test_a_wrong_key_is_an_error_not_a_curve(stack: Stack) -> None:
    with pytest.raises(TargetUnreachable, match="401"):
        asyncio.run(plan_capacity(_settings(stack, key="orc_wrong"), []))


def test_the_fake_host_refuses_past_its_queue_and_reports_metrics(stack: Stack) -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=stack.upstream.base_url) as client:
            replies = await asyncio.gather(
                *(client.post("/v1/chat/completions", json=body) for _ in range(24))
            )
            return [r.status_code for r in replies]

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 20 and statuses.count(503) == 4
    metrics = httpx.get(stack.upstream.base_url + "/metrics").text
    assert "llamacpp:requests_deferred 0" in metrics


def test_errors_inside_a_stream_and_cut_streams_count_as_errors() -> None:
    with FakeUpstream.start() as upstream:
        accountant = memory_accountant()
        config = gateway_config(upstream.base_url, retry={"max_attempts": 1})
        with serve(make_app(config, accountant)) as gateway:
            key = accountant.add_key("alice", "payments")
            upstream.script(StreamError(after_events=2), DropMidStream(after_events=2), Reply("ok"))
            settings = SweepSettings(gateway.base_url, key, "qwen-local", max_tokens=8)

            async def three() -> list[RequestSample]:
                async with httpx.AsyncClient() as client:
                    level = await measure_level(client, settings.shape(), 1, 0.0)
                    samples = list(level.samples)
                    for _ in range(2):
                        samples += (await measure_level(client, settings.shape(), 1, 0.0)).samples
                    return samples

            failed_inside, cut, fine = asyncio.run(three())
    assert not failed_inside.ok and "inside the stream" in (failed_inside.error or "")
    assert not cut.ok
    assert fine.ok and fine.ttft_s is not None
