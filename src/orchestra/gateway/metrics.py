"""Prometheus metrics of one gateway process, rendered in the text exposition format.

Counters live in plain dictionaries: the event loop is single-threaded, so no locks. With
``gateway.shared_state`` each replica adds them to the deployment's totals in Redis
(:mod:`orchestra.gateway.shared_metrics`), and ``/metrics`` renders those totals.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from orchestra.gateway.resilience import CircuitState
from orchestra.gateway.upstream_limits import UpstreamLimiters
from orchestra.providers.usage import Usage

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _label_value(value: str) -> str:
    """A label value escaped for the exposition format, always encodable as UTF-8 (a lone
    surrogate becomes ``\\udXXX`` text instead of failing the whole scrape)."""
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


@dataclass
class Histogram:
    """Request latencies of one endpoint in :data:`LATENCY_BUCKETS_S` (the last count:
    above the largest bucket)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.total += seconds
        self.n += 1


@dataclass
class GatewayMetrics:
    """Requests, latency, tokens, cost and upstream errors of this process."""

    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(endpoint, status, model) -> count; ``model`` is the tier or configured model the
    request resolved to (``""`` before that), never the client's string, so the label set
    is bounded by the configuration."""
    latency: dict[str, Histogram] = field(default_factory=dict)
    tokens: dict[tuple[str, str], int] = field(default_factory=dict)
    """(model, kind) -> tokens."""
    cost: dict[str, Decimal] = field(default_factory=dict)
    upstream_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    """(provider, status or error kind) -> count."""

    def request(self, endpoint: str, status: int, model: str, seconds: float) -> None:
        key = (endpoint, str(status), model)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(endpoint)
        if hist is None:
            hist = self.latency[endpoint] = Histogram()
        hist.observe(seconds)

    def usage(self, model: str, usage: Usage, cost: Decimal) -> None:
        for kind, value in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ):
            if value:
                self.tokens[(model, kind)] = self.tokens.get((model, kind), 0) + value
        self.cost[model] = self.cost.get(model, Decimal(0)) + cost

    def upstream_error(self, provider: str, what: str) -> None:
        key = (provider, what)
        self.upstream_errors[key] = self.upstream_errors.get(key, 0) + 1

    def render(
        self,
        circuits: dict[str, CircuitState],
        headroom: Iterable[tuple[str, Decimal]],
        limiters: UpstreamLimiters | None = None,
    ) -> str:
        """The exposition text, including circuit states, budget headroom and the limited
        upstreams' slots, queues and saturation."""
        out: list[str] = []
        out += [
            "# HELP orchestra_requests_total Requests answered.",
            "# TYPE orchestra_requests_total counter",
        ]
        for (endpoint, status, model), n in sorted(self.requests.items()):
            labels = _labels([("endpoint", endpoint), ("status", status), ("model", model)])
            out.append(f"orchestra_requests_total{labels} {n}")
        out += [
            "# HELP orchestra_request_duration_seconds Time to answer a request.",
            "# TYPE orchestra_request_duration_seconds histogram",
        ]
        for endpoint, hist in sorted(self.latency.items()):
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), hist.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                labels = _labels([("endpoint", endpoint), ("le", le)])
                out.append(f"orchestra_request_duration_seconds_bucket{labels} {cumulative}")
            labels = _labels([("endpoint", endpoint)])
            out.append(f"orchestra_request_duration_seconds_sum{labels} {hist.total:.6f}")
            out.append(f"orchestra_request_duration_seconds_count{labels} {hist.n}")
        out += [
            "# HELP orchestra_tokens_total Tokens billed.",
            "# TYPE orchestra_tokens_total counter",
        ]
        for (model, kind), n in sorted(self.tokens.items()):
            out.append(f"orchestra_tokens_total{_labels([('model', model), ('kind', kind)])} {n}")
        out += [
            "# HELP orchestra_cost_usd_total Dollars spent.",
            "# TYPE orchestra_cost_usd_total counter",
        ]
        for model, usd in sorted(self.cost.items()):
            out.append(f"orchestra_cost_usd_total{_labels([('model', model)])} {usd}")
        out += [
            "# HELP orchestra_budget_headroom_usd Dollars left in each hard-capped budget.",
            "# TYPE orchestra_budget_headroom_usd gauge",
        ]
        for name, usd in headroom:
            out.append(f"orchestra_budget_headroom_usd{_labels([('budget', name)])} {usd}")
        out += [
            "# HELP orchestra_upstream_errors_total Failed upstream attempts.",
            "# TYPE orchestra_upstream_errors_total counter",
        ]
        for (provider, what), n in sorted(self.upstream_errors.items()):
            labels = _labels([("provider", provider), ("error", what)])
            out.append(f"orchestra_upstream_errors_total{labels} {n}")
        out += [
            "# HELP orchestra_circuit_state Circuit breaker per upstream "
            "(0 closed, 1 half-open, 2 open).",
            "# TYPE orchestra_circuit_state gauge",
        ]
        codes = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
        for upstream, state in sorted(circuits.items()):
            out.append(f"orchestra_circuit_state{_labels([('upstream', upstream)])} {codes[state]}")
        if limiters is not None:
            out += _limiter_lines(limiters)
        return "\n".join(out) + "\n"


def _limiter_lines(limiters: UpstreamLimiters) -> list[str]:
    out = [
        "# HELP orchestra_upstream_in_flight Calls sent to a limited upstream and not finished.",
        "# TYPE orchestra_upstream_in_flight gauge",
    ]
    board = sorted(limiters.limiters.items())
    out += [
        f"orchestra_upstream_in_flight{_labels([('provider', p)])} {lim.in_flight}"
        for p, lim in board
    ]
    out += [
        "# HELP orchestra_upstream_queue_depth Calls waiting for a slot of a limited upstream.",
        "# TYPE orchestra_upstream_queue_depth gauge",
    ]
    out += [
        f"orchestra_upstream_queue_depth{_labels([('provider', p)])} {lim.queue_depth}"
        for p, lim in board
    ]
    out += [
        "# HELP orchestra_upstream_host_queue_depth Requests waiting at a limited upstream's "
        "host, as its own metrics say (limits.metrics_url).",
        "# TYPE orchestra_upstream_host_queue_depth gauge",
    ]
    out += [
        f"orchestra_upstream_host_queue_depth{_labels([('provider', p)])} {lim.host_queue:g}"
        for p, lim in board
        if lim.host_queue is not None
    ]
    out += [
        "# HELP orchestra_upstream_saturated_total Calls not sent to an upstream because it "
        "was saturated (they went to the next model of their chain).",
        "# TYPE orchestra_upstream_saturated_total counter",
    ]
    for (provider, reason), n in sorted(limiters.saturated.items()):
        labels = _labels([("provider", provider), ("reason", reason)])
        out.append(f"orchestra_upstream_saturated_total{labels} {n}")
    return out
