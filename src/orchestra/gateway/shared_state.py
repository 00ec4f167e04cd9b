"""The Redis that gateway replicas share (``gateway.shared_state``), and what happens when
it does not answer.

One :class:`SharedState` per gateway process holds a redis-py asyncio client (created in
the running event loop on first use), the key prefix, and the outage policy:

* every Redis call goes through :meth:`SharedState.call`, bounded by ``timeout_s``;
* a failed call is logged (once per outage) and counted
  (``orchestra_shared_state_errors_total{what}``), and for ``retry_after_s`` the replica
  does not try Redis again: each caller takes its fallback at once;
* the fallback is the caller's: ``on_error: open`` carries on with this replica's own
  state (rate-limit counters, breakers), ``on_error: closed`` refuses the call with
  :class:`SharedStateUnavailable` (503, never a 500).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orchestra.config.gateway import SharedStateSettings
from orchestra.gateway.errors import SharedStateUnavailable

log = logging.getLogger("orchestra.gateway")
T = TypeVar("T")


class SharedState:
    """This process's connection to the replicas' shared Redis (see the module docstring)."""

    def __init__(
        self,
        settings: SharedStateSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        client: Any = None,
    ) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        self._clock = clock
        self._client: Any = client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down_until = 0.0
        self.errors: dict[str, int] = {}
        """What failed (``rate_limit``, ``circuit``, ``metrics``) -> Redis errors."""
        self.up = True
        """Whether the last Redis call answered."""

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix."""
        return ":".join((self.prefix, *parts))

    @property
    def fail_closed(self) -> bool:
        """Whether calls are refused (rather than served on local state) while Redis is down."""
        return self.settings.on_error == "closed"

    def client(self) -> Any:
        """The asyncio Redis client of the running loop (made on first use)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            from redis.asyncio import Redis

            self._client = Redis.from_url(
                self.settings.url,
                socket_timeout=self.settings.timeout_s,
                socket_connect_timeout=self.settings.timeout_s,
                decode_responses=True,
                health_check_interval=30,
            )
            self._loop = loop
        return self._client

    def available(self) -> bool:
        """False while the replica waits out ``retry_after_s`` after a failed call."""
        return self._clock() >= self._down_until

    async def call(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T | None:
        """``fn(client)``, or ``None`` when Redis failed or is being waited out (the
        failure logged and counted under ``what``)."""
        if not self.available():
            self._count(what)
            return None
        try:
            async with asyncio.timeout(self.settings.timeout_s * 2):
                result = await fn(self.client())
        except Exception as exc:  # redis errors, timeouts, a closed connection
            self._failed(what, exc)
            return None
        if not self.up:
            log.warning("shared state (Redis) answers again: replicas share %s again", what)
        self.up = True
        return result

    def refuse(self, what: str) -> SharedStateUnavailable:
        """The 503 of a call refused because Redis is down and ``on_error`` is closed."""
        return SharedStateUnavailable(what, self.settings.retry_after_s)

    def _count(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def _failed(self, what: str, exc: BaseException) -> None:
        self._count(what)
        self._down_until = self._clock() + self.settings.retry_after_s
        if self.up:
            fallback = "refusing calls" if self.fail_closed else "using this replica's own state"
            log.error(
                "shared state (Redis at %s) failed during %s (%s: %s); %s until it answers",
                _redacted(self.settings.url),
                what,
                type(exc).__name__,
                exc,
                fallback,
            )
        self.up = False

    def exposition(self) -> str:
        """``orchestra_shared_state_up`` and ``orchestra_shared_state_errors_total``."""
        lines = [
            "# HELP orchestra_shared_state_up Whether this replica's last Redis call answered.",
            "# TYPE orchestra_shared_state_up gauge",
            f"orchestra_shared_state_up {1 if self.up else 0}",
            "# HELP orchestra_shared_state_errors_total Redis calls that failed or were "
            "skipped during an outage, on this replica.",
            "# TYPE orchestra_shared_state_errors_total counter",
        ]
        for what, n in sorted(self.errors.items()):
            lines.append(f'orchestra_shared_state_errors_total{{what="{what}"}} {n}')
        return "\n".join(lines) + "\n"

    async def aclose(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            try:
                await self._client.aclose()
            except Exception:  # closing on shutdown: nothing left to do about it
                log.debug("closing the shared-state client failed", exc_info=True)
            self._client = None


def _redacted(url: str) -> str:
    """``url`` without a password (never in logs)."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
