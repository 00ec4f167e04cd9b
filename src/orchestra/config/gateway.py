"""Configuration section ``gateway``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from orchestra.config.models import StrictModel


class RetrySettings(StrictModel):
    """Retries of one upstream model before moving on to the next in the fallback chain."""

    max_attempts: int = Field(default=2, ge=1, le=10)
    """Attempts per model (1 = no retry)."""
    base_delay_s: float = Field(default=0.5, ge=0)
    """First backoff ceiling; doubles per attempt, full jitter picks a delay below it."""
    max_delay_s: float = Field(default=8.0, ge=0)
    """Ceiling of any backoff delay."""
    max_retry_after_s: float = Field(default=30.0, ge=0)
    """An upstream ``retry-after`` longer than this is not waited for: the chain moves on."""


class CircuitSettings(StrictModel):
    """Per-upstream circuit breaker (per process, unless ``gateway.shared_state`` shares
    it between replicas through Redis)."""

    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open the circuit."""
    reset_after_s: float = Field(default=30.0, gt=0)
    """How long an open circuit refuses calls before one trial call (half-open)."""


class BudgetConfig(StrictModel):
    """A dollar budget (``gateway.budgets``; managed by ``orchestra.accounting``)."""

    name: str = Field(min_length=1, max_length=200)
    scope: Literal["developer", "team", "org", "run"]
    """``team`` matches a squad, tribe or division by name; ``org`` subject ``*`` = every call."""
    subject: str = Field(min_length=1)
    cap_usd: float = Field(ge=0)
    period: Literal["day", "week", "month", "none"] = "month"
    """UTC calendar periods; ``none`` for run budgets."""
    soft_pct: int | None = Field(default=80, ge=1, le=100)
    """Alert (log + webhook) once per period at this percentage of the cap."""


class RateLimitConfig(StrictModel):
    """Per-minute limits; unset = unlimited."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class LimitsConfig(StrictModel):
    """Rate limits per key, developer and team (``gateway.limits``)."""

    key: RateLimitConfig = Field(default_factory=RateLimitConfig)
    developer: RateLimitConfig = Field(default_factory=RateLimitConfig)
    team: RateLimitConfig = Field(default_factory=RateLimitConfig)
    developers: dict[str, RateLimitConfig] = Field(default_factory=dict)
    """Overrides by developer name."""
    teams: dict[str, RateLimitConfig] = Field(default_factory=dict)
    """Overrides by team (squad) name."""
    shared: bool | None = None
    """Count in the database (shared by all workers); default: yes on PostgreSQL, no on SQLite."""


class BudgetLeaseSettings(StrictModel):
    """Budget leases (``gateway.budget_leases``): each process reserves a block of a
    budget's headroom in one transaction and grants calls from it in memory. The
    database's ``reserved`` includes the unused part of every lease."""

    enabled: bool = True
    calls: int = Field(default=256, ge=1)
    """A lease covers at most this many estimates of the call that takes it."""
    fraction: int = Field(default=8, ge=2)
    """... and at most 1/``fraction`` of the budget's headroom."""
    exact_below: int = Field(default=32, ge=1)
    """With headroom under this many estimates, each call is reserved exactly."""
    max_usd: float | None = Field(default=None, gt=0)
    """A ceiling on one lease in dollars (none by default)."""
    idle_s: float = Field(default=2.0, gt=0)
    """An unused lease goes back after this long."""
    max_age_s: float = Field(default=10.0, gt=0, le=300)
    """A lease grants no more calls after this long."""


class SharedStateSettings(StrictModel):
    """Redis shared by gateway replicas (``gateway.shared_state``): rate-limit counters,
    circuit breakers and the ``/metrics`` counters of the whole deployment. Written either
    as a URL (``shared_state: redis://127.0.0.1:6379/0``) or as this mapping."""

    url: str = Field(pattern=r"^rediss?://")
    """``redis://host:port/db`` (``rediss://`` for TLS); a password goes in the URL."""
    prefix: str = Field(default="orchestra", min_length=1, max_length=100)
    """Prefix of every key (several deployments can share one Redis)."""
    on_error: Literal["open", "closed"] = "open"
    """Redis unreachable: ``open`` carries on with this replica's own counters and
    breakers (limits then hold per replica), ``closed`` refuses calls with a 503."""
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    """Connect and command timeout of each Redis call (a call that takes longer counts as
    Redis being down)."""
    retry_after_s: float = Field(default=1.0, gt=0, le=60)
    """After a failed Redis call, how long the replica keeps to its fallback before
    trying Redis again (so an outage costs one timeout per interval, not per call)."""
    sync_s: float = Field(default=0.25, gt=0, le=60)
    """How stale a replica's view of a closed circuit may get before it reads it again
    (an opening elsewhere is seen within this time)."""
    metrics_flush_s: float = Field(default=1.0, gt=0, le=300)
    """How often a replica adds its counters to the deployment's totals in Redis."""


class IdempotencySettings(StrictModel):
    """Answers kept under an ``Idempotency-Key`` (docs/gateway.md, "Idempotent calls")."""

    ttl_s: float = Field(default=86400.0, gt=0)
    """How long a key and its answer are kept; older ones are pruned (a repeat after that
    calls the model again)."""
    lease_s: float = Field(default=30.0, gt=0)
    """How long a call in flight holds its key without its replica renewing it (every third
    of it): a key whose replica died is taken over after this."""
    wait_s: float = Field(default=300.0, gt=0)
    """How long a repeated key waits for the same call in flight elsewhere before it is
    answered 409 (try again)."""


class GatewaySection(StrictModel):
    """Gateway settings: listen address, keys, limits, budgets, pricing, audit."""

    host: str = "127.0.0.1"
    """Address ``orchestra gateway`` / ``orchestra serve`` listen on."""
    port: int = Field(default=8484, ge=0, le=65535)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    metrics_public: bool = False
    """Serve ``/metrics`` without a key. Off by default: the metrics name budgets and
    models, so a scraper authenticates with an admin key (``Authorization: Bearer``)."""
    """Larger request bodies are refused with 413."""
    key_cache_ttl_s: float = Field(default=5.0, ge=0)
    """How long an authenticated key is trusted without asking the database again; a
    revoked key stops working within this time (0 = check every request)."""
    first_byte_timeout_s: float = Field(default=120.0, gt=0)
    """Time allowed between sending a request upstream and its response headers."""
    aliases: dict[str, str] = Field(default_factory=dict)
    """Extra names clients may request: alias -> tier (``opus``...) or model key."""
    allow_costlier_fallback: bool = False
    """Allow a fallback to a model priced above the requested one (never silently: the
    served model is always in ``x-orchestra-served-model`` and the ledger)."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    circuit: CircuitSettings = Field(default_factory=CircuitSettings)
    price_file: str | None = None
    """YAML/JSON price table overriding the built-in prices; re-read when it changes."""
    budgets: list[BudgetConfig] = Field(default_factory=list)
    """Dollar budgets, synchronised into the database at startup (audited)."""
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    budget_webhook: str | None = None
    """URL that receives a JSON POST when a budget crosses its soft threshold."""
    reservation_ttl_s: float = Field(default=900.0, gt=0)
    """Budget reservations older than this are reclaimed (their call died)."""
    budget_leases: BudgetLeaseSettings = Field(default_factory=BudgetLeaseSettings)
    stream_journal_interval_s: float = Field(default=1.0, gt=0)
    """How often the usage seen so far in a stream is journaled (crash reconciliation)."""
    large_input_bytes: int = Field(default=256 * 1024, gt=0)
    """Bodies above this size are token-estimated on a worker thread, off the event loop."""
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    """Model calls answered once per ``Idempotency-Key`` (kept in the database)."""
    shared_state: SharedStateSettings | None = None
    """Redis shared by the gateway's replicas (rate limits, circuit breakers, metrics);
    ``None``: each process keeps its own (docs/gateway.md, "Replicas")."""

    @field_validator("shared_state", mode="before")
    @classmethod
    def _url_alone(cls, value: Any) -> Any:
        """``shared_state: redis://...`` is short for ``shared_state: {url: redis://...}``."""
        return {"url": value} if isinstance(value, str) else value
