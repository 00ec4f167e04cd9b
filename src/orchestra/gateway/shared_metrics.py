"""One ``/metrics`` for the whole deployment: each replica adds its counters to totals kept
in Redis, and any replica's ``/metrics`` renders the totals.

The request path is untouched (it counts in this process's
:class:`~orchestra.gateway.metrics.GatewayMetrics`, in memory). Every ``metrics_flush_s``,
at each scrape and at shutdown, the replica adds what it counted since its last flush to
hashes under ``{prefix}:m:`` (``HINCRBY`` in one pipeline; dollars as integer
nano-dollars, latency sums as integer microseconds, so no float drift). Totals are
monotonic: a replica that stops takes nothing away, so Prometheus sees no counter reset.
A scrape shows the other replicas' counts as of their last flush (at most
``metrics_flush_s`` old). While Redis is down, what a replica counts is kept and added
once Redis answers again, and ``/metrics`` shows this replica's own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal
from typing import Any

from orchestra.accounting.money import from_nano, to_nano
from orchestra.gateway.metrics import LATENCY_BUCKETS_S, GatewayMetrics, Histogram
from orchestra.gateway.shared_state import SharedState

log = logging.getLogger("orchestra.gateway")

SEP = "\x1f"
"""Separates label values in a hash field (never in a label value the gateway counts)."""
HASHES = ("requests", "latency", "tokens", "cost", "errors")

Counts = dict[tuple[str, str], int]
"""(hash, field) -> integer count."""


def flatten(metrics: GatewayMetrics) -> Counts:
    """``metrics`` as integer counts by (hash, field)."""
    out: Counts = {}
    for (endpoint, status, model), n in metrics.requests.items():
        out[("requests", SEP.join((endpoint, status, model)))] = n
    for endpoint, hist in metrics.latency.items():
        for i, count in enumerate(hist.counts):
            out[("latency", f"{endpoint}{SEP}{i}")] = count
        out[("latency", f"{endpoint}{SEP}sum_us")] = round(hist.total * 1_000_000)
        out[("latency", f"{endpoint}{SEP}n")] = hist.n
    for (model, kind), n in metrics.tokens.items():
        out[("tokens", f"{model}{SEP}{kind}")] = n
    for model, usd in metrics.cost.items():
        out[("cost", model)] = to_nano(usd)
    for (provider, what), n in metrics.upstream_errors.items():
        out[("errors", f"{provider}{SEP}{what}")] = n
    return out


def unflatten(hashes: dict[str, dict[str, str]]) -> GatewayMetrics:
    """The metrics that the hashes read from Redis hold."""
    m = GatewayMetrics()
    for key, n in hashes.get("requests", {}).items():
        endpoint, status, model = key.split(SEP)
        m.requests[(endpoint, status, model)] = int(n)
    for key, n in hashes.get("latency", {}).items():
        endpoint, part = key.split(SEP)
        hist = m.latency.get(endpoint)
        if hist is None:
            hist = m.latency[endpoint] = Histogram()
        if part == "sum_us":
            hist.total = int(n) / 1_000_000
        elif part == "n":
            hist.n = int(n)
        elif part.isdigit() and int(part) <= len(LATENCY_BUCKETS_S):
            hist.counts[int(part)] = int(n)
    for key, n in hashes.get("tokens", {}).items():
        model, kind = key.split(SEP)
        m.tokens[(model, kind)] = int(n)
    for model, nano in hashes.get("cost", {}).items():
        m.cost[model] = from_nano(int(nano)) if int(nano) else Decimal(0)
    for key, n in hashes.get("errors", {}).items():
        provider, what = key.split(SEP)
        m.upstream_errors[(provider, what)] = int(n)
    return m


class SharedMetrics:
    """Adds this replica's counters to the deployment's totals (see the module docstring)."""

    def __init__(self, shared: SharedState, metrics: GatewayMetrics) -> None:
        self.shared = shared
        self.metrics = metrics
        self._flushed: Counts = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def flush(self) -> bool:
        """Add what was counted since the last flush; False when Redis did not take it
        (kept for the next flush)."""
        async with self._lock:
            now = flatten(self.metrics)
            deltas = {k: v - self._flushed.get(k, 0) for k, v in now.items()}
            deltas = {k: d for k, d in deltas.items() if d}
            if not deltas:
                return True

            async def add(client: Any) -> bool:
                async with client.pipeline(transaction=True) as pipe:
                    for (name, field), delta in deltas.items():
                        pipe.hincrby(self.shared.key("m", name), field, delta)
                    await pipe.execute()
                return True

            if await self.shared.call("metrics", add) is None:
                return False
            self._flushed = now
            return True

    async def totals(self) -> GatewayMetrics | None:
        """The deployment's counters (this replica's flushed first); ``None`` when Redis
        does not answer."""
        await self.flush()

        async def read(client: Any) -> dict[str, dict[str, str]]:
            async with client.pipeline(transaction=False) as pipe:
                for name in HASHES:
                    pipe.hgetall(self.shared.key("m", name))
                values = await pipe.execute()
            return dict(zip(HASHES, values, strict=True))

        hashes = await self.shared.call("metrics", read)
        return unflatten(hashes) if hashes is not None else None

    def start(self) -> None:
        """Flush every ``metrics_flush_s`` until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._every())

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.shared.settings.metrics_flush_s)
            try:
                await self.flush()
            except Exception:  # never let the flusher die: the next round retries
                log.exception("adding this replica's metrics to the shared totals failed")

    async def stop(self) -> None:
        """Stop flushing, after a last flush."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
