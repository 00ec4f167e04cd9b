"""What the GenAI spans cost a model call: ``python -m bench.gateway.telemetry``.

One process: the fake upstream on loopback and the gateway (accounting in memory, so the
span is not hidden behind database time) served in-process through httpx's ASGI
transport. Two variants, alternated round by round so that load from elsewhere hits both:

- ``off``: telemetry not configured. Nothing wraps the accountant (``traced(a, None) is
  a``), so this is the gateway as it is without the feature: the baseline.
- ``on``: :class:`~orchestra.gateway.TracedAccountant` with the SDK's
  ``BatchSpanProcessor`` and an exporter that drops what it is given (the export itself
  runs on the processor's thread; what is measured is what the call's path pays).

Printed: the median time per call of each variant, their ratio, and the time one span
takes to build and hand over, measured alone. No assertion: a benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import yaml
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from orchestra.config import parse_config
from orchestra.gateway import (
    Caller,
    CallRecord,
    Gateway,
    GatewayApp,
    GatewayDeps,
    MemoryAccountant,
    emit_call_span,
    traced,
)
from orchestra.providers import Usage
from orchestra.testing import FakeUpstream

ROUNDS = 5
CALLS = 300
KEY = "orc_bench_telemetry"
BODY = {"model": "haiku", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi."}]}


class _Dropped(SpanExporter):
    """Takes spans and drops them: the export's own cost is not the call's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Dropped()))
    return provider


def _app(upstream: str, provider: TracerProvider | None) -> GatewayApp:
    config = parse_config(
        yaml.safe_dump(
            {
                "providers": {"anthropic": {"kind": "anthropic", "base_url": upstream}},
                "models": {"claude-haiku-4-5": {"provider": "anthropic"}},
                "tiers": {"haiku": {"model": "claude-haiku-4-5"}},
            }
        ),
        environ={},
    )
    accountant = MemoryAccountant(prices={"claude-haiku-4-5": (Decimal(1), Decimal(5))})
    accountant.keys[KEY] = Caller("bench", "bench", "bench-team")
    tracer = provider.get_tracer("bench") if provider is not None else None
    return GatewayApp(Gateway(config, traced(accountant, tracer), GatewayDeps()))


async def _round(app: GatewayApp) -> float:
    """Seconds per call over :data:`CALLS` sequential calls."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        for _ in range(10):  # warm: connections, caches
            await client.post("/v1/messages", json=BODY, headers={"x-api-key": KEY})
        start = time.perf_counter()
        for _ in range(CALLS):
            answer = await client.post("/v1/messages", json=BODY, headers={"x-api-key": KEY})
            assert answer.status_code == 200, answer.text
        return (time.perf_counter() - start) / CALLS


def _span_alone(count: int = 20_000) -> float:
    """Seconds to build and hand over one span, alone."""
    provider = _provider()
    tracer = provider.get_tracer("bench")
    record = CallRecord(
        request_id="r",
        started_at=datetime.now(UTC),
        caller=Caller("k", "bench", "bench-team"),
        client_format="anthropic",
        requested_model="haiku",
        served_model="claude-haiku-4-5",
        provider="anthropic",
        usage=Usage(12, 34),
        outcome="ok",
        status=200,
        latency_ms=12.5,
    )
    start = time.perf_counter()
    for _ in range(count):
        emit_call_span(tracer, record)
    took = (time.perf_counter() - start) / count
    provider.shutdown()
    return took


def main() -> None:
    with FakeUpstream.start() as upstream:
        provider = _provider()
        apps = {"off": _app(upstream.base_url, None), "on": _app(upstream.base_url, provider)}
        times: dict[str, list[float]] = {"off": [], "on": []}
        for n in range(ROUNDS):
            order = ("off", "on") if n % 2 == 0 else ("on", "off")
            for name in order:
                times[name].append(asyncio.run(_round(apps[name])))
        provider.shutdown()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    span = _span_alone()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"telemetry: {ROUNDS} rounds x {CALLS} sequential calls, in-process, memory accounting")
    print(f"  load average while it ran: {load} ({os.cpu_count()} cores)")
    print(f"  off (baseline, nothing wraps the accountant): {off * 1e6:8.1f} us per call")
    print(f"  on  (a GenAI span per call, batch processor): {on * 1e6:8.1f} us per call")
    print(f"  on / off: {on / off:.3f}")
    print(
        f"  one span built and handed over, alone: {span * 1e6:.1f} us ({span / off:.1%} of a call)"
    )


if __name__ == "__main__":
    main()
