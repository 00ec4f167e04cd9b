"""Calling one upstream model: retries, fallbacks, circuit breakers and timeouts.

:meth:`UpstreamCaller.open` walks a route's chain and returns the first upstream response whose
status says it will be served (2xx), or raises the error to answer the client with. The
response is still open: the caller streams or reads its body. Once the client has seen a
byte, there is no fallback any more; that is the caller's concern.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orchestra.gateway.accounts import Attempt, CallRecord
from orchestra.gateway.errors import (
    CircuitOpen,
    GatewayHTTPError,
    LimitRefused,
    Overloaded,
    UpstreamFailed,
    UpstreamTimeout,
)
from orchestra.gateway.formats import WireFormat
from orchestra.gateway.resilience import (
    RETRYABLE_STATUSES,
    Circuits,
    RetryPolicy,
    default_random,
    parse_retry_after,
)
from orchestra.gateway.routing import Route, Target
from orchestra.gateway.transport import (
    UpstreamConnectionError,
    UpstreamResponse,
    UpstreamTransport,
)
from orchestra.gateway.upstream_limits import Saturation, UpstreamLimiter, UpstreamLimiters
from orchestra.providers.usage import Usage

ANTHROPIC_VERSION = "2023-06-01"
_FORWARDED_ANTHROPIC = ("anthropic-version", "anthropic-beta")


class UpstreamClientError(GatewayHTTPError):
    """The upstream refused the request as the client's fault (4xx other than 408/429):
    no retry, no fallback; the body is passed back."""

    def __init__(self, status: int, body: bytes, kind: WireFormat, message: str) -> None:
        super().__init__(message, status=status, error_type="invalid_request_error")
        self.body = body
        self.body_format = kind


class ProviderAuthFailed(UpstreamFailed):
    """The provider refused the gateway's credential for it (its 401/403): a 502 naming
    the provider; the next model of the chain may still serve."""

    def __init__(self, target: Target, status: int) -> None:
        where = (
            f"environment variable {target.api_key_env}"
            if target.api_key_env
            else f"secret {target.api_key_secret!r}"
            if target.api_key_secret
            else "no credential configured"
        )
        super().__init__(
            f"provider {target.provider!r} refused the gateway's credential (HTTP {status}); "
            "your Orchestra key is fine",
            hint=f"the operator must check the credential of providers.{target.provider} ({where})",
            code="provider_credential_refused",
        )


def missing_credential(target: Target) -> UpstreamFailed:
    """The 502 for a provider whose credential is not available: it is never called."""
    where = (
        f"environment variable {target.api_key_env} is not set"
        if target.api_key_env
        else f"secret {target.api_key_secret!r} is not in the secrets store"
    )
    return UpstreamFailed(
        f"provider {target.provider!r} has no credential ({where}), so model "
        f"{target.model!r} was not called",
        hint=f"the operator must set the credential of providers.{target.provider} and reload "
        "(`orchestra secrets set NAME` or export the variable)",
        code="provider_credential_missing",
    )


@dataclass
class OpenedReply:
    """An upstream response (status < 400) not yet read."""

    target: Target
    response: UpstreamResponse
    started: float
    """Monotonic time the successful attempt was sent."""
    slot: UpstreamLimiter | None = None
    """The limiter whose slot the call holds until :meth:`finish` (limited upstreams)."""

    def finish(self) -> None:
        """The answer was read or relayed (or abandoned): give the upstream's slot back."""
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()


@dataclass
class CallPlan:
    """What to send to each target of the chain: body bytes and upstream path per target."""

    build: Callable[[Target], tuple[str, bytes]]
    """Target -> (path under the provider's base URL, body bytes)."""
    query: str
    """Query string to forward (Anthropic upstreams only)."""
    client_headers: dict[str, str]


def upstream_headers(
    target: Target, credential: str | None, client_headers: dict[str, str]
) -> dict[str, str]:
    """Headers sent upstream: content type, the provider's credential, Anthropic version and
    beta flags. The client's own key never leaves the gateway."""
    headers = {"content-type": "application/json", "accept": "application/json"}
    if target.kind is WireFormat.ANTHROPIC:
        for name in _FORWARDED_ANTHROPIC:
            value = client_headers.get(name)
            if value:
                headers[name] = value
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if credential:
            headers["x-api-key"] = credential
    elif credential:
        headers["authorization"] = f"Bearer {credential}"
    return headers


def _price_rates(cost: Callable[[str, Usage], Decimal], model: str) -> tuple[Decimal, Decimal]:
    return (
        cost(model, Usage(input_tokens=1_000_000)),
        cost(model, Usage(output_tokens=1_000_000)),
    )


def costlier(cost: Callable[[str, Usage], Decimal], candidate: str, requested: str) -> bool:
    """Whether ``candidate`` charges more per input or output token than ``requested``."""
    cin, cout = _price_rates(cost, candidate)
    rin, rout = _price_rates(cost, requested)
    return cin > rin or cout > rout


@dataclass
class UpstreamCaller:
    """Sends requests along a chain with retries, fallbacks and circuit breakers."""

    client: Callable[[], UpstreamTransport]
    """The process's upstream HTTP client (created lazily inside the event loop)."""
    circuits: Circuits
    policy: RetryPolicy
    first_byte_timeout_s: float
    allow_costlier_fallback: bool
    cost: Callable[[str, Usage], Decimal]
    credential: Callable[[Target], str | None]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rand: Callable[[], float] = default_random
    clock: Callable[[], float] = time.monotonic
    on_error: Callable[[str, str], None] | None = None
    limiters: UpstreamLimiters = field(default_factory=UpstreamLimiters)
    """Concurrency limits and queues of the limited upstreams (shared by snapshots)."""
    _headers: dict[tuple[str, str | None], dict[str, str]] = field(
        default_factory=dict, init=False, repr=False
    )

    async def open(self, route: Route, plan: CallPlan, record: CallRecord) -> OpenedReply:
        """The first upstream response that will be served; attempts go to ``record``."""
        last: GatewayHTTPError | None = None
        primary = route.primary
        for index, target in enumerate(route.chain):
            if (
                index > 0
                and not self.allow_costlier_fallback
                and costlier(self.cost, target.model, primary.model)
            ):
                record.attempts.append(
                    Attempt(target.model, target.provider, None, "fallback refused: costlier", 0)
                )
                continue
            if (target.api_key_env or target.api_key_secret) and not self.credential(target):
                # Never sent: the provider's 401 would read as the client's key being wrong.
                record.attempts.append(
                    Attempt(target.model, target.provider, None, "no credential", 0)
                )
                last = last or missing_credential(target)
                continue
            outcome = await self._serve(target, plan, record, last)
            if isinstance(outcome, OpenedReply):
                return outcome
            last = outcome
        raise last or UpstreamFailed(
            "no model of the chain could serve this request",
            hint="check the tier's fallbacks and gateway.allow_costlier_fallback",
        )

    async def _serve(
        self, target: Target, plan: CallPlan, record: CallRecord, last: GatewayHTTPError | None
    ) -> OpenedReply | GatewayHTTPError | None:
        """``target``'s answer, with its retries; else the error to answer with if no later
        model serves (``last`` unless this model's failure says more)."""
        breaker = self.circuits.get(target.upstream_id)
        limiter = self.limiters.limiters.get(target.provider)
        attempt = 0
        while True:
            attempt += 1
            if limiter is not None:
                saturation = await limiter.acquire()
                if saturation is not None:
                    return last or self._saturated(target, saturation, record)
            if not await breaker.acquire():
                if limiter is not None:
                    limiter.release()
                record.attempts.append(
                    Attempt(target.model, target.provider, None, "circuit open", 0)
                )
                cause = f" (last failure: {breaker.last_error})" if breaker.last_error else ""
                return last or CircuitOpen(
                    f"upstream {target.provider!r} is failing{cause}; its circuit breaker is open",
                    hint="retry later; the gateway tries it again after a pause",
                    retry_after_s=self.circuits.settings.reset_after_s,
                )
            error, retry_after = await self._sent(target, plan, record, limiter)
            if isinstance(error, OpenedReply):
                await breaker.succeeded()
                return error
            if isinstance(error, UpstreamClientError):
                await breaker.succeeded()
                raise error
            if isinstance(error, LimitRefused | ProviderAuthFailed):
                # An upstream rate limit says nothing about the upstream's health, nor
                # does a refused credential (and retrying it cannot help).
                breaker.release()
            else:
                await breaker.failed(error.message)
            if isinstance(error, ProviderAuthFailed):
                return error
            last = error
            delay = self.policy.delay(attempt, retry_after, self.rand)
            if delay is None:
                return last
            await self.sleep(delay)

    async def _sent(
        self, target: Target, plan: CallPlan, record: CallRecord, limiter: UpstreamLimiter | None
    ) -> tuple[Any, float | None]:
        """One attempt at ``target`` (its slot already taken when ``limiter`` is given): the
        opened reply, which keeps the slot, or the error and its ``retry-after``."""
        started = self.clock()
        try:
            path, body = plan.build(target)
            error, retry_after = await self._attempt(target, path, body, plan, record, started)
        except BaseException:
            # Nothing was learnt about the upstream (the request could not be built,
            # or the call was cancelled): a claimed half-open trial goes back.
            self.circuits.get(target.upstream_id).release()
            if limiter is not None:
                limiter.release()
            raise
        if limiter is not None:
            if isinstance(error, OpenedReply | UpstreamTimeout):
                limiter.observe(self.clock() - started)
            if isinstance(error, OpenedReply):
                error.slot = limiter  # held until the answer is read or relayed
            else:
                limiter.release()
        return error, retry_after

    async def _attempt(
        self,
        target: Target,
        path: str,
        body: bytes,
        plan: CallPlan,
        record: CallRecord,
        started: float,
    ) -> tuple[Any, float | None]:
        url = target.base_url + path
        if plan.query and target.kind is WireFormat.ANTHROPIC:
            url = f"{url}?{plan.query}"
        headers = self._target_headers(target, plan.client_headers)
        first_byte = min(self.first_byte_timeout_s, target.timeout_s)
        # The read timeout bounds the wait for headers and any gap between body chunks;
        # headers_within bounds connecting and the headers together.
        try:
            response = await self.client().post(
                url,
                body,
                headers,
                connect_timeout=target.connect_timeout_s,
                read_timeout=first_byte,
                headers_within=first_byte,
            )
        except TimeoutError:
            self._failed(target, record, None, "timeout", started)
            return UpstreamTimeout(
                f"model {target.model!r} did not answer in time",
                hint="retry; a smaller request or a faster tier may help",
            ), None
        except UpstreamConnectionError as exc:
            cause = exc.__cause__ or exc
            what = f"connection error: {type(cause).__name__}"
            self._failed(target, record, None, what, started)
            detail = str(cause)
            return UpstreamFailed(
                f"could not reach provider {target.provider!r} at {target.base_url} for model "
                f"{target.model!r}: {type(cause).__name__}" + (f": {detail}" if detail else ""),
                hint=f"check providers.{target.provider}.base_url and that the server is running",
            ), None
        status = response.status
        if status < 400:
            record.attempts.append(
                Attempt(target.model, target.provider, status, None, self._ms(started))
            )
            return OpenedReply(target, response, started), None
        try:
            data = await response.read()
        except (UpstreamConnectionError, TimeoutError):
            data = b""
        finally:
            response.release()
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        self._failed(target, record, status, f"HTTP {status}", started)
        message = f"upstream of model {target.model!r} answered HTTP {status}"
        if status == 529:
            return Overloaded(message, hint="retry later", retry_after_s=retry_after), retry_after
        if status == 429:
            return LimitRefused(
                message + " (upstream rate limit)",
                hint="retry later",
                retry_after_s=retry_after,
                code="rate_limit_exceeded",
            ), retry_after
        if status in RETRYABLE_STATUSES or status >= 500:
            return UpstreamFailed(message, status=status if status >= 500 else 502), retry_after
        if status in (401, 403):
            # The provider refused the gateway's own credential: not the client's fault, and
            # passing the 401 on would tell the client its Orchestra key is wrong.
            return ProviderAuthFailed(target, status), None
        return UpstreamClientError(status, data, target.kind, message), None

    def _saturated(self, target: Target, saturation: Saturation, record: CallRecord) -> Overloaded:
        """Record a call not sent to ``target`` because its upstream is saturated; the
        error answered if no other model of the chain serves."""
        self.limiters.count(target.provider, saturation)
        record.attempts.append(
            Attempt(target.model, target.provider, None, f"saturated ({saturation.value})", 0)
        )
        return Overloaded(
            f"upstream {target.provider!r} of model {target.model!r} is saturated "
            f"({saturation.value.replace('_', ' ')}) and no other model of the chain served",
            hint="retry later; the operator may add a fallback to the tier or route, or raise "
            f"providers.{target.provider}.limits",
            retry_after_s=1.0,
        )

    def _target_headers(self, target: Target, client_headers: dict[str, str]) -> dict[str, str]:
        """:func:`upstream_headers`, built once per provider and credential; only the
        client's Anthropic version and beta flags are added per call."""
        credential = self.credential(target)
        key = (target.provider, credential)
        base = self._headers.get(key)
        if base is None:
            base = self._headers[key] = upstream_headers(target, credential, {})
        if target.kind is WireFormat.ANTHROPIC:
            forwarded = {
                name: value for name in _FORWARDED_ANTHROPIC if (value := client_headers.get(name))
            }
            if forwarded:
                return {**base, **forwarded}
        return base

    def _failed(
        self, target: Target, record: CallRecord, status: int | None, what: str, started: float
    ) -> None:
        record.attempts.append(
            Attempt(target.model, target.provider, status, what, self._ms(started))
        )
        if self.on_error is not None:
            self.on_error(target.provider, str(status) if status is not None else what)

    def _ms(self, started: float) -> float:
        return round((self.clock() - started) * 1000, 3)
