"""Retries with backoff, and a circuit breaker per upstream.

Clocks and randomness are injected so tests drive time by hand.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from orchestra.config.gateway import CircuitSettings, RetrySettings

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
"""Upstream statuses worth another attempt or a fallback; other 4xx are the client's fault."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded, honouring ``retry-after``."""

    max_attempts: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(
            settings.max_attempts,
            settings.base_delay_s,
            settings.max_delay_s,
            settings.max_retry_after_s,
        )

    def delay(
        self, attempt: int, retry_after_s: float | None, rand: Callable[[], float]
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1), or
        ``None`` when the same model should not be tried again."""
        if attempt >= self.max_attempts:
            return None
        if retry_after_s is not None:
            if retry_after_s > self.max_retry_after_s:
                return None
            return max(0.0, retry_after_s)
        ceiling: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return rand() * ceiling


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds only; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures; open refuses calls
    for ``reset_after_s``; then half-open lets one trial call through, whose outcome
    closes or re-opens it."""

    failure_threshold: int = 5
    reset_after_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    last_error: str | None = None
    """What the latest failure was (shown to clients refused while the circuit is open)."""

    def allow(self) -> bool:
        """Whether a call may go to this upstream now (claims the half-open trial)."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if self.clock() - self.opened_at < self.reset_after_s:
                return False
            self.state = CircuitState.HALF_OPEN
            self.trial_in_flight = False
        if self.trial_in_flight:
            return False
        self.trial_in_flight = True
        return True

    def release(self) -> None:
        """End a call that says nothing about the upstream's health (it was never sent, or
        was rate-limited): a half-open trial it held is given back for the next call."""
        self.trial_in_flight = False

    def success(self) -> None:
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.trial_in_flight = False

    def failure(self, reason: str | None = None) -> None:
        """Count a failed call (``reason``: what went wrong, for the clients it refuses)."""
        self.trial_in_flight = False
        if reason is not None:
            self.last_error = reason
        if self.state is CircuitState.HALF_OPEN:
            self._open()
            return
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self._open()

    def _open(self) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = self.clock()
        self.failures = 0

    # The request path's interface (:class:`Breaker`), shared with the Redis-backed breaker.

    async def acquire(self) -> bool:
        """:meth:`allow`, awaitable."""
        return self.allow()

    async def succeeded(self) -> None:
        """:meth:`success`, awaitable."""
        self.success()

    async def failed(self, reason: str | None = None) -> None:
        """:meth:`failure`, awaitable."""
        self.failure(reason)


class Breaker(Protocol):
    """A circuit breaker as the request path uses it: this process's
    (:class:`CircuitBreaker`) or the one replicas share through Redis
    (:class:`orchestra.gateway.shared_breakers.SharedBreaker`)."""

    @property
    def state(self) -> CircuitState:
        """Closed, open or half-open (as last known)."""

    @property
    def last_error(self) -> str | None:
        """What the latest failure was."""

    async def acquire(self) -> bool:
        """Whether a call may go to this upstream now (claims the half-open trial)."""

    async def succeeded(self) -> None:
        """The call went through: close the circuit."""

    async def failed(self, reason: str | None = None) -> None:
        """Count a failed call."""

    def release(self) -> None:
        """End a call that says nothing about the upstream's health (gives a claimed
        half-open trial back)."""


class Circuits(Protocol):
    """The breakers of a gateway, one per upstream."""

    settings: CircuitSettings

    def get(self, upstream: str) -> Breaker:
        """``upstream``'s breaker (created on first use)."""

    async def states(self) -> dict[str, CircuitState]:
        """Upstream -> circuit state, for ``/metrics``."""


@dataclass
class CircuitBoard:
    """The breakers of one process, one per upstream (created on first use)."""

    settings: CircuitSettings = field(default_factory=CircuitSettings)
    clock: Callable[[], float] = time.monotonic
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def get(self, upstream: str) -> CircuitBreaker:
        breaker = self.breakers.get(upstream)
        if breaker is None:
            breaker = CircuitBreaker(
                self.settings.failure_threshold, self.settings.reset_after_s, self.clock
            )
            self.breakers[upstream] = breaker
        return breaker

    async def states(self) -> dict[str, CircuitState]:
        """Upstream -> state of this process's breakers."""
        return {name: b.state for name, b in self.breakers.items()}


def default_random() -> float:
    """Jitter source; not for security."""
    return random.random()  # noqa: S311
