"""One level of a capacity sweep: ``concurrency`` closed-loop clients streaming chat
completions through the gateway for a while, measured from the client side.

Each client sends its next request as soon as its last one ends (a closed loop, as vLLM's
and GuideLLM's concurrency sweeps do). Per request: time to first token (the first content
delta), inter-token latency (the mean gap between content deltas), end to end, and whether
it failed. Meanwhile the server's Prometheus ``/metrics`` (llama.cpp with ``--metrics``,
vLLM) is polled for its queue depth and the requests it is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from orchestra.capacity.errors import CapacityError
from orchestra.providers.host_metrics import read_gauges

__all__ = [
    "LevelResult",
    "LoadShape",
    "RequestSample",
    "ServerGauges",
    "level_json",
    "measure_level",
    "percentile",
    "read_gauges",
]


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q ≤ 100), ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class RequestSample:
    """One request as the client saw it."""

    ok: bool
    e2e_s: float
    ttft_s: float | None = None
    """Time to the first content delta; ``None`` when none came."""
    itl_s: float | None = None
    """Mean gap between content deltas; ``None`` with fewer than two."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ServerGauges:
    """What the server's metrics said during a level; ``None`` where it says nothing."""

    queue_max: float | None = None
    queue_mean: float | None = None
    running_max: float | None = None
    samples: int = 0
    """Successful reads of the metrics endpoint."""


@dataclass(frozen=True, slots=True)
class LevelResult:
    """A level of the sweep: its samples, summarised."""

    concurrency: int
    seconds: float
    """From the first request sent to the last one ended."""
    samples: list[RequestSample] = field(repr=False)
    gauges: ServerGauges

    @property
    def ok(self) -> list[RequestSample]:
        """Requests that succeeded."""
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        """Requests that failed (an error status, a broken stream, a transport error)."""
        return sum(1 for s in self.samples if not s.ok)

    @property
    def error_rate(self) -> float:
        """Failed requests over all requests (1.0 for a level with no request)."""
        return self.errors / len(self.samples) if self.samples else 1.0

    def e2e(self, q: float) -> float | None:
        """End-to-end latency percentile of the successful requests, seconds."""
        return percentile([s.e2e_s for s in self.ok], q)

    def ttft(self, q: float) -> float | None:
        """Time-to-first-token percentile, seconds."""
        return percentile([s.ttft_s for s in self.ok if s.ttft_s is not None], q)

    def itl(self, q: float) -> float | None:
        """Inter-token latency percentile (of each request's mean gap), seconds."""
        return percentile([s.itl_s for s in self.ok if s.itl_s is not None], q)

    def goodput(self, slo_s: float) -> float:
        """Requests per second that succeeded within ``slo_s`` end to end."""
        good = sum(1 for s in self.ok if s.e2e_s <= slo_s)
        return good / self.seconds if self.seconds > 0 else 0.0

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.ok) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class LoadShape:
    """What each request of the sweep asks for, and where it goes."""

    url: str
    """The gateway's OpenAI chat completions URL."""
    key: str = field(repr=False)
    model: str
    prompt: str
    max_tokens: int
    timeout_s: float


async def _one_request(
    client: httpx.AsyncClient, shape: LoadShape, clock: Callable[[], float]
) -> RequestSample:
    body = {
        "model": shape.model,
        "max_tokens": shape.max_tokens,
        "stream": True,
        "messages": [{"role": "user", "content": shape.prompt}],
    }
    headers = {"authorization": f"Bearer {shape.key}"}
    start = clock()
    deltas: list[float] = []
    done = finished = False
    try:
        async with client.stream("POST", shape.url, json=body, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                return RequestSample(False, clock() - start, error=f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                content, ends = _chunk_kind(data)
                if content:
                    deltas.append(clock())
                finished = finished or ends
    except _StreamFailed as exc:
        return RequestSample(False, clock() - start, error=str(exc)[:200])
    except httpx.HTTPError as exc:
        return RequestSample(False, clock() - start, error=type(exc).__name__)
    end = clock()
    if not done:
        return RequestSample(False, end - start, error="stream ended without [DONE]")
    if not finished:
        # llama-cpp-python's server ends a stream this way when a newer request interrupts
        # it (its default): a cut reply, not a fast one.
        return RequestSample(False, end - start, error="stream ended without a finish reason")
    ttft = deltas[0] - start if deltas else None
    itl = (deltas[-1] - deltas[0]) / (len(deltas) - 1) if len(deltas) > 1 else None
    return RequestSample(True, end - start, ttft, itl)


class _StreamFailed(CapacityError):
    """The server reported an error inside a stream it had answered 200."""


def _chunk_kind(data: str) -> tuple[bool, bool]:
    """Whether a ``data:`` payload carries content, and whether it ends the choice (a
    ``finish_reason``)."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return False, False
    if not isinstance(chunk, dict):
        return False, False
    if "error" in chunk:
        raise _StreamFailed(f"error inside the stream: {chunk['error']}")
    content = finished = False
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        content = content or (isinstance(delta, dict) and bool(delta.get("content")))
        finished = finished or bool(choice.get("finish_reason"))
    return content, finished


async def _poll_gauges(
    client: httpx.AsyncClient, url: str, stop: asyncio.Event, every_s: float
) -> ServerGauges:
    queues: list[float] = []
    running: list[float] = []
    reads = 0
    while not stop.is_set():
        try:
            response = await client.get(url, timeout=2.0)
            if response.status_code == 200:
                reads += 1
                queue, busy = read_gauges(response.text)
                if queue is not None:
                    queues.append(queue)
                if busy is not None:
                    running.append(busy)
        except httpx.HTTPError:
            pass  # no metrics endpoint (Ollama, llama-cpp-python): the gauges stay unknown
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    return ServerGauges(
        queue_max=max(queues) if queues else None,
        queue_mean=sum(queues) / len(queues) if queues else None,
        running_max=max(running) if running else None,
        samples=reads,
    )


async def measure_level(
    client: httpx.AsyncClient,
    shape: LoadShape,
    concurrency: int,
    duration_s: float,
    *,
    metrics_url: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LevelResult:
    """Run ``concurrency`` closed-loop clients for ``duration_s`` (each finishes the request
    it has in flight, and sends at least one)."""
    samples: list[RequestSample] = []
    start = clock()
    stop_at = start + duration_s

    async def client_loop() -> None:
        while True:
            samples.append(await _one_request(client, shape, clock))
            if clock() >= stop_at:
                return

    stop = asyncio.Event()
    poller: asyncio.Task[ServerGauges] | None = None
    if metrics_url:
        poller = asyncio.create_task(_poll_gauges(client, metrics_url, stop, 0.2))
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    seconds = clock() - start
    stop.set()
    gauges = await poller if poller is not None else ServerGauges()
    return LevelResult(concurrency, seconds, samples, gauges)


def _json_number(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def level_json(level: LevelResult, slo_s: float) -> dict[str, Any]:
    """A level for ``--json`` and reports."""
    g = level.gauges
    return {
        "concurrency": level.concurrency,
        "requests": len(level.samples),
        "errors": level.errors,
        "error_rate": round(level.error_rate, 4),
        "seconds": round(level.seconds, 3),
        "throughput_rps": round(level.throughput, 3),
        "goodput_rps": round(level.goodput(slo_s), 3),
        "e2e_s": {f"p{q}": _json_number(level.e2e(q)) for q in (50, 90, 99)},
        "ttft_s": {f"p{q}": _json_number(level.ttft(q)) for q in (50, 90, 99)},
        "itl_s": {f"p{q}": _json_number(level.itl(q), 5) for q in (50, 90, 99)},
        "queue_depth": {"max": g.queue_max, "mean": _json_number(g.queue_mean, 2)},
        "running_max": g.running_max,
        "metrics_reads": g.samples,
    }
