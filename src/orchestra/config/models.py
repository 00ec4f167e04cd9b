"""Configuration of upstream providers, models and tiers.

Tiers (``opus``, ``sonnet``, ``haiku``) are abstract: which model serves a tier is set
here, per organisation and optionally per team.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TierName = Literal["opus", "sonnet", "haiku"]
TIERS: tuple[TierName, ...] = ("opus", "sonnet", "haiku")


class StrictModel(BaseModel):
    """Base for configuration sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamLimits(StrictModel):
    """How much one upstream (a provider deployment, e.g. a local model host) is given at
    once by this gateway process, and when it counts as saturated."""

    max_concurrency: int = Field(ge=1, le=100_000)
    """Calls sent to it at once; a call beyond waits in the queue."""
    max_queue: int = Field(default=0, ge=0, le=100_000)
    """Calls that may wait (first in, first out) for one of those; beyond, the upstream is
    saturated and the call goes to the next model of its chain."""
    queue_timeout_s: float = Field(default=30.0, gt=0)
    """The longest a call waits in the queue before it goes to the next model instead."""
    slow_after_s: float | None = Field(default=None, gt=0)
    """Saturated by latency: when the median time to the response headers of its recent
    calls is above this, the upstream gets one call at a time and queues none."""
    latency_window: int = Field(default=20, ge=1, le=10_000)
    """How many recent calls that median is taken over."""
    latency_max_age_s: float = Field(default=60.0, gt=0)
    """Latencies older than this are forgotten (a quiet host is not slow)."""
    metrics_url: str | None = Field(default=None, pattern=r"^https?://")
    """The host's own Prometheus metrics (llama.cpp's server with ``--metrics``: its
    ``/metrics``; vLLM's): read every ``metrics_interval_s``; the upstream is saturated
    while more than ``max_server_queue`` requests wait at the host (other clients' too)."""
    metrics_interval_s: float = Field(default=1.0, ge=0.05, le=300)
    max_server_queue: int = Field(default=0, ge=0)


class ProviderConfig(StrictModel):
    """An upstream that serves models."""

    kind: Literal["anthropic", "openai"]
    """Wire format the upstream speaks: Anthropic Messages or OpenAI Chat Completions."""
    base_url: str
    """Root URL, e.g. ``https://api.anthropic.com`` or ``http://127.0.0.1:11434/v1``."""
    api_key_env: str | None = None
    """Name of the environment variable holding the credential (never the credential)."""
    api_key_secret: str | None = None
    """Name of an entry in the encrypted secrets file holding the credential."""
    timeout_s: float = Field(default=600.0, gt=0)
    """Overall timeout of one upstream call."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    region: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    """Where the provider processes data (``eu``, ``us-east`` ...); its models inherit it.
    Policies on data residency compare it with the regions a developer may use."""
    limits: UpstreamLimits | None = None
    """Concurrency limit, bounded queue and saturation of this upstream (``None``: no
    limit, every call is sent at once)."""


class ModelPrice(StrictModel):
    """Prices in US dollars per million tokens."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cache_write: float = Field(default=0.0, ge=0)
    cache_read: float = Field(default=0.0, ge=0)


class ModelConfig(StrictModel):
    """A concrete model offered by a provider."""

    provider: str
    """Key of an entry under ``providers``."""
    upstream_name: str | None = None
    """Model id sent upstream; defaults to the model's own key."""
    aliases: list[str] = Field(default_factory=list)
    """Other names clients may request this model by."""
    price: ModelPrice | None = None
    """Overrides the price table; ``None`` means look the model up in the price table."""
    region: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    """Where this model processes data; ``None``: its provider's region."""


class TierConfig(StrictModel):
    """Which model serves a tier, and where to go when it cannot."""

    model: str
    """Key of an entry under ``models``."""
    fallbacks: list[str] = Field(default_factory=list)
    """Models tried in order when the primary is overloaded, failing or timing out."""


class TeamOverride(StrictModel):
    """Settings a team (squad) may override."""

    tiers: dict[str, TierConfig] = {}
    """Tier -> model mapping for this team only."""
