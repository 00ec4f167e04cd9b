"""The gateway core: configuration snapshot, accounting off the event loop, one model call.

:class:`Gateway` holds what lives for the whole process (HTTP client, circuit breakers,
metrics, a thread pool for blocking accounting work) and an immutable :class:`Snapshot`
of everything derived from the configuration, swapped atomically by :meth:`Gateway.reload`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from orchestra.config.models import UpstreamLimits
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import ConfigError
from orchestra.gateway.accounts import Accountant, Caller
from orchestra.gateway.errors import (
    Forbidden,
    GatewayHTTPError,
    Unauthenticated,
    UnpricedModel,
)
from orchestra.gateway.formats import WireFormat
from orchestra.gateway.idempotency_store import IdempotencyStore
from orchestra.gateway.metrics import GatewayMetrics
from orchestra.gateway.model_policy import ModelPolicy
from orchestra.gateway.proxy_client import client_from_environment
from orchestra.gateway.resilience import CircuitBoard, Circuits, RetryPolicy, default_random
from orchestra.gateway.routing import Route, RoutingSnapshot, Target, upstream_credential
from orchestra.gateway.shared_breakers import SharedCircuitBoard
from orchestra.gateway.shared_limits import SharedRateLimits
from orchestra.gateway.shared_metrics import SharedMetrics
from orchestra.gateway.shared_state import SharedState
from orchestra.gateway.transport import UpstreamTransport
from orchestra.gateway.upstream import UpstreamCaller
from orchestra.gateway.upstream_limits import UpstreamLimiters, poll_host_metrics
from orchestra.policy import PolicyInvalid
from orchestra.providers.usage import Usage

log = logging.getLogger("orchestra.gateway")
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """Everything derived from one configuration; never mutated, only replaced."""

    config: OrchestraConfig
    routing: RoutingSnapshot
    caller: UpstreamCaller
    loaded_at: datetime
    credentials: dict[str, str | None] = field(default_factory=dict)
    """Provider -> credential, resolved (and decrypted) once per snapshot, not per call."""
    missing_credentials: tuple[str, ...] = ()
    """Providers configured with a credential that is not available: their models are
    never called (a 502 naming the provider instead); listed by ``/readyz``."""
    policy: ModelPolicy | None = None
    """The policies on model calls (``None``: not enforced, see ``GatewayDeps.policies``)."""


SYSTEM_CALLER = Caller(key_id="system", developer="system", team=None, admin=True)
"""The actor of what the gateway does on its own (a reload on SIGHUP)."""


@dataclass
class _CachedKey:
    caller: Caller | None
    expires: float
    version: int = 0
    """The accountant's key-change counter when this was read (another one: stale)."""


MAX_KEY_CHARS = 256
"""Longest API key looked up (Orchestra's keys are 47 characters); a longer one is refused
without a database lookup or a cache entry."""
KEY_CACHE_ENTRIES = 10_000
"""Keys that authenticated, remembered for ``gateway.key_cache_ttl_s``."""
REFUSED_KEY_CACHE_ENTRIES = 1_024
"""Keys that did not, remembered as well (so garbage keys cost no lookup each time) in a
table of their own: a flood of garbage never evicts a good key."""


class RequestIds:
    """Unique request ids without a system call per request: a random 64-bit prefix drawn
    once per process, then a counter (``os.urandom`` per id showed up in profiles)."""

    def __init__(self) -> None:
        self._prefix = "req_" + uuid.uuid4().hex[:16]
        self._next = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._next):012x}"


@dataclass
class GatewayDeps:
    """Injectable collaborators (tests pass fakes; production takes the defaults)."""

    http_client: Callable[[], UpstreamTransport] | None = None
    """Builds the upstream HTTP client (default: :func:`~orchestra.gateway.proxy_client.
    client_from_environment`, pooled keep-alive HTTP/1.1, through aiohttp where a proxy
    variable applies)."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rand: Callable[[], float] = default_random
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    new_id: Callable[[], str] = field(default_factory=lambda: RequestIds())
    """Request ids (also the ledger entry ids)."""
    secrets: Mapping[str, str] | None = None
    """Decrypted upstream credentials by name (``providers.X.api_key_secret``)."""
    policies: bool = True
    """Enforce the Cedar policies on model calls. Off only to measure their cost (the
    gateway benchmark's baseline); every product entry point keeps it on."""
    policy_base_dir: Path | None = None
    """The folder a relative ``policies.folder`` is under: orchestra.yaml's own folder
    (``None``: the working folder, for a configuration that came from no file). Relative
    ``roster.directories`` resolve against it too."""
    idempotency: IdempotencyStore | None = None
    """Where ``Idempotency-Key``\\ s are kept: the shared database (the composition root
    passes it); ``None``: in this process's memory only."""
    agents: Callable[[OrchestraConfig], Mapping[str, str]] | None = None
    """Agent -> category of the roster that ``routing`` rules name, read when the
    configuration has rules (default: :func:`orchestra.roster.load_roster`)."""


class Gateway:
    """One gateway process's state; the ASGI app in :mod:`orchestra.gateway.app` serves it."""

    def __init__(
        self,
        config: OrchestraConfig,
        accountant: Accountant,
        deps: GatewayDeps | None = None,
    ) -> None:
        self.deps = deps or GatewayDeps()
        self.accountant = accountant
        self.metrics = GatewayMetrics()
        self.circuits: Circuits = CircuitBoard(config.gateway.circuit, self.deps.clock)
        self.shared: SharedState | None = None
        """Redis shared with the other replicas (``gateway.shared_state``); read at start,
        so changing it takes a restart."""
        self.shared_limits: SharedRateLimits | None = None
        self.shared_metrics: SharedMetrics | None = None
        if config.gateway.shared_state is not None:
            self._share(config)
        self.idempotency = self.deps.idempotency or IdempotencyStore.in_memory()
        """Idempotency keys and their answers (:mod:`orchestra.gateway.idempotency`)."""
        self.limiters = UpstreamLimiters(self.deps.clock)
        self._host_metrics: asyncio.Task[None] | None = None
        self._client: UpstreamTransport | None = None
        # SQLite allows one writer at a time; a few threads keep reads flowing meanwhile.
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="orchestra-acct")
        # Keys that work are found by their text (no hash on the hot path); keys that failed
        # by their SHA-256 digest: 32 bytes each whatever the client sent, never the text.
        self._keys: dict[str, _CachedKey] = {}
        self._refused_keys: dict[bytes, _CachedKey] = {}
        self.started = False
        self.snapshot = self._build(config)
        self.limiters.configure(_limits(config))

    def _agents(self, config: OrchestraConfig) -> Mapping[str, str] | None:
        """The roster's agent -> category, when routing rules need it."""
        if not config.routing.agents and not config.routing.categories:
            return None
        if self.deps.agents is not None:
            return self.deps.agents(config)
        from orchestra.roster import RosterInvalid, load_roster

        try:
            roster = load_roster(config=config, base_dir=self.deps.policy_base_dir)
        except RosterInvalid as exc:
            raise ConfigError(
                f"routing rules name agents, but the roster does not load: {exc}",
                hint="fix the agent files (`orchestra agents validate`)",
                location="routing",
            ) from exc
        return {agent.name: agent.category for agent in roster}

    def _share(self, config: OrchestraConfig) -> None:
        """Rate limits, breakers and metrics through Redis (docs/gateway.md, "Replicas")."""
        from orchestra.accounting.facade import policy_from_config

        settings = config.gateway.shared_state
        assert settings is not None
        self.shared = SharedState(settings, clock=self.deps.clock)
        self.circuits = SharedCircuitBoard(self.shared, config.gateway.circuit, self.deps.clock)
        policy = policy_from_config(config.gateway.limits)
        self.shared_limits = SharedRateLimits(self.shared, policy)
        self.shared_metrics = SharedMetrics(self.shared, self.metrics)

    async def admit(
        self, caller: Caller, run_id: str | None, model: str, tokens: int, usd: Decimal
    ) -> Any:
        """The call counted against the rate limits (in Redis when the replicas share
        them) and ``usd`` held on its budgets; returns the reservation
        (:meth:`Accountant.admit`)."""
        if self.shared_limits is not None:
            await self.shared_limits.check(caller, tokens)
        return await self.accountant.admit(caller, run_id, model, tokens, usd)

    async def metrics_text(self, headroom: list[tuple[str, Decimal]]) -> str:
        """The ``/metrics`` text: the deployment's counters when replicas share them
        (this replica's own while Redis is down), circuits, budget headroom."""
        metrics = self.metrics
        if self.shared_metrics is not None:
            metrics = await self.shared_metrics.totals() or metrics
        text = metrics.render(await self.circuits.states(), headroom, self.limiters)
        if self.shared is not None:
            text += self.shared.exposition()
        return text

    def _build(self, config: OrchestraConfig) -> Snapshot:
        routing = RoutingSnapshot.from_config(config, self._agents(config))
        self._check_prices(routing)
        caller = UpstreamCaller(
            client=self.client,
            circuits=self.circuits,
            policy=RetryPolicy.from_settings(config.gateway.retry),
            first_byte_timeout_s=config.gateway.first_byte_timeout_s,
            allow_costlier_fallback=config.gateway.allow_costlier_fallback,
            cost=self.accountant.cost,
            credential=self._credential,
            sleep=self.deps.sleep,
            rand=self.deps.rand,
            clock=self.deps.clock,
            on_error=self.metrics.upstream_error,
            limiters=self.limiters,
        )
        credentials: dict[str, str | None] = {}
        missing: list[str] = []
        for target in routing.targets.values():
            if target.provider not in credentials:
                credentials[target.provider] = upstream_credential(target, self.deps.secrets)
                if credentials[target.provider] is None and (
                    target.api_key_env or target.api_key_secret
                ):
                    missing.append(target.provider)
                    log.error(
                        "provider %r has no credential (%s): its models will answer 502 "
                        "without being called",
                        target.provider,
                        f"${target.api_key_env} is not set"
                        if target.api_key_env
                        else f"secret {target.api_key_secret!r} not found",
                    )
        policy = (
            ModelPolicy.from_config(config, base_dir=self.deps.policy_base_dir)
            if self.deps.policies
            else None
        )
        return Snapshot(
            config, routing, caller, self.deps.now(), credentials, tuple(sorted(missing)), policy
        )

    def _check_prices(self, routing: RoutingSnapshot) -> None:
        """Refuse a configuration in which an Anthropic-format model has no price: its
        calls would otherwise cost "unknown" and no dollar budget could hold them. (A model
        of an OpenAI-format provider without a price is a $0 local model.)"""
        unpriced = sorted(
            t.model
            for t in routing.targets.values()
            if t.kind is WireFormat.ANTHROPIC and not self.accountant.price_known(t.model)
        )
        if unpriced:
            names = ", ".join(unpriced)
            raise ConfigError(
                f"no price is known for model(s) {names}, so dollar budgets could not hold "
                "their calls",
                hint=(
                    f"add `price: {{input: ..., output: ..., cache_write: ..., cache_read: ...}}`"
                    f" (dollars per million tokens) to models.{unpriced[0]} in orchestra.yaml, "
                    "or an entry to the price file (gateway.price_file)"
                ),
            )

    def cost_after_call(self, model: str, usage: Usage, record_reserved: Decimal) -> Decimal:
        """The cost to record for a call that was served: its price, or (when the price
        disappeared since admission, e.g. a price file edit) the amount reserved for it,
        never $0 for unknown."""
        try:
            return self.accountant.cost(model, usage)
        except UnpricedModel:
            log.error("no price for model %s after the call: charged its reservation", model)
            return record_reserved

    def reload(self, config: OrchestraConfig, actor: Caller | None = None) -> None:
        """Swap in a new configuration; requests in flight keep the snapshot they began with.

        Blocking (reads the secrets file): call it on a worker thread from async code.

        Raises :class:`orchestra.errors.ConfigError` or :class:`orchestra.policy.PolicyInvalid`
        (and keeps the old snapshot) when the new configuration or its policies do not hold
        together; a policy set refused is logged and audited (``policy.reload_failed``).
        """
        try:
            snapshot = self._build(config)
        except PolicyInvalid as exc:
            old = self.snapshot.policy
            details = {
                "in_force": old.engine.version if old is not None else None,
                "problems": [str(p) for p in exc.problems][:20],
            }
            log.error("policy reload refused; the policies in force stay:\n%s", exc)
            self.accountant.audit(
                actor or SYSTEM_CALLER, "policy.reload_failed", "policies", details
            )
            raise
        self.circuits.settings = config.gateway.circuit
        self.limiters.configure(_limits(config))
        if self.shared_limits is not None:
            from orchestra.accounting.facade import policy_from_config

            self.shared_limits.policy = policy_from_config(config.gateway.limits)
        self.snapshot = snapshot
        log.info("gateway configuration reloaded")

    def client(self) -> UpstreamTransport:
        """The upstream HTTP client, created on first use inside the running loop."""
        if self._client is None or self._client.closed:
            self._client = (
                self.deps.http_client()
                if self.deps.http_client is not None
                else client_from_environment(os.environ)
            )
        return self._client

    def _credential(self, target: Target) -> str | None:
        return self.snapshot.credentials.get(target.provider)

    def tiers_without_credential(self) -> dict[str, tuple[str, ...]]:
        """Tier -> providers, for each tier no model of whose chain has its provider's
        credential: every call to it would be a 502 (nothing is sent upstream)."""
        snapshot = self.snapshot
        missing = set(snapshot.missing_credentials)
        out: dict[str, tuple[str, ...]] = {}
        for tier, chain in snapshot.routing.tiers.items():
            providers = tuple(dict.fromkeys(snapshot.routing.targets[m].provider for m in chain))
            if all(p in missing for p in providers):
                out[tier] = providers
        return out

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking accounting work on the worker threads, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, *args)

    async def startup(self) -> int:
        """Reconcile streams a crash left open, and start reading the limited hosts'
        metrics; returns how many streams were reconciled."""
        count = await self.blocking(self.accountant.reconcile_incomplete)
        if count:
            log.warning("reconciled %d streamed calls cut off by a previous crash", count)
        self._host_metrics = asyncio.create_task(self._poll_host_metrics())
        if self.shared is not None:
            # Connect now, not on the first call (logged and counted if Redis is down).
            await self.shared.call("connect", lambda client: client.ping())
        if self.shared_metrics is not None:
            self.shared_metrics.start()
        self.started = True
        return count

    async def _poll_host_metrics(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:

            async def get(url: str) -> str:
                response = await client.get(url)
                response.raise_for_status()
                return response.text

            await poll_host_metrics(self.limiters, get)

    async def aclose(self) -> None:
        if self._host_metrics is not None:
            self._host_metrics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._host_metrics
        if self.shared_metrics is not None:
            await self.shared_metrics.stop()
        if self.shared is not None:
            await self.shared.aclose()
        if self._client is not None:
            await self._client.aclose()
        self.executor.shutdown(wait=True)

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller behind ``x-api-key`` or ``Authorization: Bearer``; 401 otherwise."""
        secret = headers.get("x-api-key")
        if not secret:
            auth = headers.get("authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer":
                secret = value.strip()
        if not secret:
            raise Unauthenticated(
                "no API key: send it in the x-api-key header or as Authorization: Bearer",
                hint="create one with `orchestra keys create --developer NAME --team TEAM`",
                code="missing_api_key",
            )
        if len(secret) > MAX_KEY_CHARS:
            raise Unauthenticated(
                "the API key is invalid, revoked or expired",
                hint="ask an admin for a new key (`orchestra keys create`)",
                code="invalid_api_key",
            )
        now = self.deps.clock()
        version = self.accountant.keys_version()  # a revocation anywhere applies at once
        cached = self._keys.get(secret)
        digest = b""
        if cached is None:
            digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
            cached = self._refused_keys.get(digest)
        if cached is None or cached.expires <= now or cached.version != version:
            found = await self.blocking(self.accountant.authenticate, secret)
            ttl = self.snapshot.config.gateway.key_cache_ttl_s
            cached = _CachedKey(found, now + ttl, version)
            if ttl > 0:
                digest = digest or hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
                # A key revoked (or created) meanwhile moves from one table to the other.
                self._keys.pop(secret, None)
                self._refused_keys.pop(digest, None)
                if found is not None:
                    if len(self._keys) >= KEY_CACHE_ENTRIES:
                        self._keys.clear()
                    self._keys[secret] = cached
                else:
                    if len(self._refused_keys) >= REFUSED_KEY_CACHE_ENTRIES:
                        self._refused_keys.clear()
                    self._refused_keys[digest] = cached
        if cached.caller is None:
            raise Unauthenticated(
                "the API key is invalid, revoked or expired",
                hint="ask an admin for a new key (`orchestra keys create`)",
                code="invalid_api_key",
            )
        return cached.caller

    @staticmethod
    def require_admin(caller: Caller) -> None:
        if not caller.admin:
            raise Forbidden(
                "this endpoint needs an admin key",
                hint="use a key created with `orchestra keys create --admin`",
            )

    @staticmethod
    def check_allowed(caller: Caller, route: Route) -> None:
        """403 when the key is restricted to some names and this is not one of them."""
        allowed = caller.allowed_models
        if allowed is None:
            return
        names = {route.requested, route.primary.model}
        if route.tier:
            names.add(route.tier)
        if not names & allowed:
            raise Forbidden(
                f"this key may not use model {route.requested!r}",
                hint=f"use one of: {', '.join(sorted(allowed))}",
            )

    async def govern(self, caller: Caller, route: Route) -> Route:
        """The route with only the models the policies let ``caller`` use (fallbacks
        included); 403, audited with the deciding policy ids, when none is left."""
        policy = self.snapshot.policy
        if policy is None:
            return route
        verdict = policy.check(caller, route)
        if verdict.route is not None:
            return verdict.route
        decision = verdict.decision
        details = {
            "principal": verdict.principal.actor,
            "policy_ids": list(decision.policy_ids) or ["default-deny"],
            "reasons": list(decision.reasons),
            "policy_version": decision.version,
            "requested": route.requested,
            "models": [t.model for t in route.chain],
            "region": verdict.resource.attrs.get("region"),
            "allowed_regions": list(verdict.principal.regions),
        }
        target = f"call_model {verdict.resource.label}"
        await self.blocking(self.accountant.audit, caller, "policy.deny", target, details)
        raise policy.refusal(verdict)

    def reservation_usd(self, route: Route, input_tokens: int, max_tokens: int) -> Decimal:
        """The most the call could cost on any model that may serve it."""
        usage = Usage(input_tokens=input_tokens, output_tokens=max_tokens)
        chain = route.chain
        if not self.snapshot.config.gateway.allow_costlier_fallback:
            chain = chain[:1] + tuple(
                t for t in chain[1:] if not _costlier(self.accountant.cost, t.model, chain[0].model)
            )
        return max(self.accountant.cost(t.model, usage) for t in chain)


def _limits(config: OrchestraConfig) -> dict[str, UpstreamLimits]:
    """``providers.<name>.limits`` of the providers that have them."""
    return {name: p.limits for name, p in config.providers.items() if p.limits is not None}


def _costlier(cost: Callable[[str, Usage], Decimal], a: str, b: str) -> bool:
    from orchestra.gateway.upstream import costlier

    return costlier(cost, a, b)


__all__ = ["Gateway", "GatewayDeps", "GatewayHTTPError", "Snapshot"]
