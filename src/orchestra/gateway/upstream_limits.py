"""Per-upstream concurrency limits, bounded FIFO queues and saturation.

An upstream (a provider: one model host or one cloud deployment) configured with
``providers.<name>.limits`` gets at most ``max_concurrency`` calls from this process at
once. A call beyond waits, first in first out, in a queue of at most ``max_queue`` calls for
at most ``queue_timeout_s``. When the queue is full, the wait times out, or the upstream is
slow (the median time to its response headers over its recent calls above
``slow_after_s``), the upstream is *saturated* for that call: it is not sent there, and the
caller moves on to the next model of its chain (the cloud fallback of a local host).

With ``metrics_url``, the host's own metrics (llama.cpp's ``llamacpp:requests_deferred``,
vLLM's ``vllm:num_requests_waiting``) are read in the background: while more than
``max_server_queue`` requests wait at the host, whoever sent them, it is saturated too
(``host_queue``).

A slot is held from the moment the call is admitted until its answer is fully read or
relayed (a stream holds it to its end), so ``max_concurrency`` bounds what the host is
decoding. A slow upstream keeps getting one call at a time, so its latency is measured
again and the saturation ends when the host recovers; latencies older than
``latency_max_age_s`` are forgotten.

Everything here runs on the gateway's event loop (one thread): no locks. The limits are per
process, like the circuit breakers: with ``--workers N`` a host gets at most N times the
limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from orchestra.config.models import UpstreamLimits
from orchestra.providers.host_metrics import read_gauges

log = logging.getLogger("orchestra.gateway")


class Saturation(StrEnum):
    """Why a call was not sent to an upstream."""

    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
    SLOW = "slow"
    HOST_QUEUE = "host_queue"
    """The host's own metrics say more requests wait there than ``max_server_queue``."""


@dataclass
class UpstreamLimiter:
    """The slots and queue of one upstream (see the module's docstring)."""

    settings: UpstreamLimits
    clock: Callable[[], float] = time.monotonic
    in_flight: int = 0
    """Calls admitted and not yet finished (handed-over slots included)."""
    peak_in_flight: int = 0
    host_queue: float | None = None
    """Requests waiting at the host, from its own metrics (``None``: not read, or stale)."""
    host_read_at: float = 0.0
    _waiting: deque[asyncio.Future[None]] = field(default_factory=deque, repr=False)
    _latencies: deque[tuple[float, float]] = field(default_factory=deque, repr=False)
    """(when, seconds to the response headers), oldest first."""

    @property
    def queue_depth(self) -> int:
        """Calls waiting for a slot now."""
        return len(self._waiting)

    def median_latency_s(self) -> float | None:
        """The median time to the response headers of the recent calls, ``None`` without
        any recent call."""
        horizon = self.clock() - self.settings.latency_max_age_s
        samples = self._latencies
        while samples and samples[0][0] < horizon:
            samples.popleft()
        if not samples:
            return None
        ordered = sorted(s for _, s in samples)
        return ordered[len(ordered) // 2]

    def slow(self) -> bool:
        """Whether the upstream is saturated by its latency."""
        limit = self.settings.slow_after_s
        if limit is None:
            return False
        median = self.median_latency_s()
        return median is not None and median > limit

    def _take(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def host_saturated(self) -> bool:
        """Whether the host's own metrics, read lately, show more waiting requests than
        ``max_server_queue`` (a reading older than three intervals is not trusted)."""
        limits = self.settings
        if self.host_queue is None or limits.metrics_url is None:
            return False
        if self.clock() - self.host_read_at > 3 * limits.metrics_interval_s:
            return False
        return self.host_queue > limits.max_server_queue

    def host_read(self, queue: float | None) -> None:
        """Record the host's queue depth as its metrics said it (``None``: unreadable)."""
        self.host_queue = queue
        self.host_read_at = self.clock()

    async def acquire(self) -> Saturation | None:
        """Take a slot, waiting in the queue if need be: ``None`` when the call may be sent
        (then :meth:`release` it once finished), else why the upstream is saturated."""
        limits = self.settings
        if self.host_saturated():
            return Saturation.HOST_QUEUE
        if self.slow():
            # One call at a time, none queued: enough to notice the host recovering.
            if self.in_flight == 0 and not self._waiting:
                self._take()
                return None
            return Saturation.SLOW
        if self.in_flight < limits.max_concurrency and not self._waiting:
            self._take()
            return None
        if len(self._waiting) >= limits.max_queue:
            return Saturation.QUEUE_FULL
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(limits.queue_timeout_s):
                await turn  # release() hands its slot over: in_flight stays counted
        except TimeoutError:
            if self._handed(turn):
                return None  # the slot came just as the time ran out: use it
            return Saturation.QUEUE_TIMEOUT
        except asyncio.CancelledError:
            if self._handed(turn):
                self.release()  # handed a slot while being cancelled: pass it on
            raise
        return None

    def _handed(self, turn: asyncio.Future[None]) -> bool:
        """Whether ``turn`` was given a slot; if not, it leaves the queue."""
        if turn.done() and not turn.cancelled():
            return True
        with contextlib.suppress(ValueError):
            self._waiting.remove(turn)
        return False

    def release(self) -> None:
        """Free a slot, handing it to the longest-waiting call if there is one."""
        while self._waiting and self.in_flight <= self.settings.max_concurrency:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_flight -= 1

    def observe(self, seconds: float) -> None:
        """Record the time a call took to its response headers."""
        samples = self._latencies
        samples.append((self.clock(), seconds))
        while len(samples) > self.settings.latency_window:
            samples.popleft()

    def reconfigure(self, settings: UpstreamLimits) -> None:
        """New limits (a reload): calls in flight keep their slots; a higher concurrency
        admits waiting calls at once."""
        self.settings = settings
        while self._waiting and self.in_flight < settings.max_concurrency:
            turn = self._waiting.popleft()
            if not turn.done():
                self._take()
                turn.set_result(None)


@dataclass
class UpstreamLimiters:
    """The limiters of one process, one per limited provider, kept across reloads."""

    clock: Callable[[], float] = time.monotonic
    limiters: dict[str, UpstreamLimiter] = field(default_factory=dict)
    saturated: dict[tuple[str, str], int] = field(default_factory=dict)
    """(provider, reason) -> calls sent elsewhere because the provider was saturated."""

    def configure(self, limits: Mapping[str, UpstreamLimits]) -> None:
        """Apply a configuration's ``providers.<name>.limits``: new limiters for new
        providers, new settings for the others; a provider without limits loses its
        limiter (calls in flight release the one they hold)."""
        for provider in list(self.limiters):
            if provider not in limits:
                del self.limiters[provider]
        for provider, settings in limits.items():
            limiter = self.limiters.get(provider)
            if limiter is None:
                self.limiters[provider] = UpstreamLimiter(settings, self.clock)
            elif limiter.settings != settings:
                limiter.reconfigure(settings)

    def count(self, provider: str, reason: Saturation) -> None:
        """Count one call not sent to ``provider`` because it was saturated."""
        key = (provider, reason.value)
        self.saturated[key] = self.saturated.get(key, 0) + 1


async def poll_host_metrics(
    limiters: UpstreamLimiters,
    get: Callable[[str], Awaitable[str]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Read, forever, the metrics of every limited upstream that names a ``metrics_url``,
    each at its ``metrics_interval_s``, into its limiter. A host whose metrics cannot be
    read counts as not saturated (logged once until it answers again)."""
    due: dict[str, float] = {}
    while True:
        wait = 1.0
        for provider, limiter in list(limiters.limiters.items()):
            url = limiter.settings.metrics_url
            if url is None:
                continue
            if limiters.clock() >= due.get(provider, 0.0):
                await _read_host(provider, limiter, url, get)
                due[provider] = limiters.clock() + limiter.settings.metrics_interval_s
            wait = min(wait, due[provider] - limiters.clock())
        await sleep(max(wait, 0.01))


async def _read_host(
    provider: str, limiter: UpstreamLimiter, url: str, get: Callable[[str], Awaitable[str]]
) -> None:
    try:
        queue, _running = read_gauges(await get(url))
    except Exception as exc:  # any failure to read: judge the host without its metrics
        if limiter.host_queue is not None or limiter.host_read_at == 0.0:
            log.warning(
                "metrics of upstream %r at %s cannot be read (%s): saturation is judged "
                "without them",
                provider,
                url,
                type(exc).__name__,
            )
        limiter.host_read(None)
        return
    limiter.host_read(queue)
