"""Plan a host's capacity: probe the model through the gateway, sweep, read the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from orchestra.accounting import LedgerEntry
from orchestra.capacity.errors import InvalidSweep, TargetUnreachable
from orchestra.capacity.ledger_load import cloud_spend, peak_load
from orchestra.capacity.measure import LevelResult, LoadShape, measure_level
from orchestra.capacity.plan import SLO, CapacityPlan, payback, sweep
from orchestra.config.schema import OrchestraConfig

__all__ = ["DEFAULT_PROMPT", "SweepSettings", "metrics_url_for", "plan_capacity"]

DEFAULT_PROMPT = "Write a short Python function that reverses a string."
"""The user message of every sweep request unless another is given."""


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """What to measure and how (see ``docs/capacity.md``)."""

    gateway_url: str
    """The gateway's base URL, e.g. ``http://127.0.0.1:8080``."""
    key: str = field(repr=False)
    """An Orchestra API key the sweep's calls are made (and recorded in the ledger) with."""
    model: str
    """The model name the gateway routes to the local host."""
    slo: SLO = field(default_factory=SLO)
    levels: list[int] | None = None
    """Concurrency levels to measure; ``None``: search up to ``ceiling``."""
    ceiling: int = 32
    duration_s: float = 10.0
    """How long each level sends requests (each client ends the request it has in flight)."""
    max_tokens: int = 64
    prompt: str = DEFAULT_PROMPT
    metrics_url: str | None = None
    """The model server's Prometheus ``/metrics`` (queue depth); ``None``: not read."""
    timeout_s: float = 300.0
    host_price_usd: float | None = None
    host_running_usd_month: float = 0.0

    def shape(self) -> LoadShape:
        """The request every client sends."""
        if self.max_tokens < 1 or self.duration_s <= 0:
            raise InvalidSweep(
                f"max_tokens {self.max_tokens} and duration {self.duration_s} s must be positive",
                hint="e.g. --max-tokens 64 --duration 10",
            )
        url = self.gateway_url.rstrip("/") + "/v1/chat/completions"
        return LoadShape(url, self.key, self.model, self.prompt, self.max_tokens, self.timeout_s)


async def _probe(client: httpx.AsyncClient, shape: LoadShape) -> None:
    """One request first, so a wrong key, model or URL is an error, not a curve of failures."""
    probe = await measure_level(client, shape, 1, 0.0)
    sample = probe.samples[0]
    if not sample.ok:
        raise TargetUnreachable(
            f"a probe request to {shape.url} for model {shape.model!r} failed: {sample.error}",
            hint="check the gateway URL, the key (--key or ORCHESTRA_API_KEY) and that the "
            "model is configured in orchestra.yaml and its server is running",
        )


async def plan_capacity(
    settings: SweepSettings,
    entries: Iterable[LedgerEntry],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CapacityPlan:
    """Sweep ``settings``' model through the gateway and plan from ``entries`` (the ledger's
    calls in the planning window)."""
    shape = settings.shape()
    history = list(entries)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(settings.timeout_s, connect=10.0)
    async with httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout) as client:
        await _probe(client, shape)

        async def measure(concurrency: int) -> LevelResult:
            return await measure_level(
                client,
                shape,
                concurrency,
                settings.duration_s,
                metrics_url=settings.metrics_url,
            )

        levels = await sweep(
            measure, settings.slo, levels=settings.levels, ceiling=settings.ceiling
        )
    peak = peak_load(history)
    cloud = cloud_spend(history)
    plan = CapacityPlan(
        settings.slo,
        levels,
        peak,
        cloud,
        payback(None, None, cloud),
        target={
            "gateway_url": settings.gateway_url,
            "model": settings.model,
            "max_tokens": settings.max_tokens,
            "duration_s": settings.duration_s,
            "metrics_url": settings.metrics_url,
        },
    )
    result = payback(
        settings.host_price_usd, plan.developers_per_host, cloud, settings.host_running_usd_month
    )
    return CapacityPlan(settings.slo, levels, peak, cloud, result, plan.target)


def metrics_url_for(config: OrchestraConfig, model: str) -> str | None:
    """Where the server behind ``model`` publishes Prometheus metrics, if it is an
    OpenAI-compatible provider: its base URL without ``/v1``, plus ``/metrics`` (llama.cpp's
    server started with ``--metrics``, vLLM). ``None`` for a model not configured."""
    for name, entry in config.models.items():
        if model == name or model in entry.aliases:
            provider = config.providers.get(entry.provider)
            if provider is None or provider.kind != "openai":
                return None
            base = provider.base_url.rstrip("/")
            base = base.removesuffix("/v1")
            return base + "/metrics"
    return None
