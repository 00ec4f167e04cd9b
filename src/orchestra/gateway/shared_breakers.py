"""Circuit breakers shared by gateway replicas through Redis.

Each upstream's breaker is a Redis hash ``{prefix}:cb:{upstream}`` (state, consecutive
failures, when it opened, until when a half-open trial is claimed, the last error), changed
only by Lua scripts, so replicas see one state machine: the same as
:class:`~orchestra.gateway.resilience.CircuitBreaker`'s (closed -> open after
``failure_threshold`` consecutive failures, on any replica; open refuses calls for
``reset_after_s``; then one trial call, on whichever replica claims it first, closes or
re-opens it). Time is Redis's own.

A replica keeps a mirror of each breaker (a :class:`CircuitBreaker`) so that the hot path
costs no Redis round trip: a closed circuit read less than ``sync_s`` ago admits the call
at once, an open one refuses it until its reset time; otherwise the claim script runs, and
updates the mirror. A failure and the success after failures are written at once. So an
opening on one replica is seen by the others within ``sync_s``.

Redis unreachable: ``on_error: open`` carries on with the mirror as this replica's own
breaker; ``on_error: closed`` refuses the call (503).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestra.config.gateway import CircuitSettings
from orchestra.gateway.resilience import CircuitBreaker, CircuitState
from orchestra.gateway.shared_state import SharedState

_COMMON = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', key, 's', 'f', 'o', 'tr', 'e')
local s, f, o, tr, e = h[1] or 'closed', tonumber(h[2] or 0), tonumber(h[3] or 0),
  tonumber(h[4] or 0), h[5] or ''
local reset = tonumber(ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
"""
# Every script answers {state, consecutive failures, ms the circuit stays open, allowed,
# last error}.
CLAIM = (
    _COMMON
    + """
local trial = tonumber(ARGV[3])
if s == 'closed' then return {s, f, 0, 1, e} end
if s == 'open' then
  local left = o + reset - now
  if left > 0 then return {s, f, left, 0, e} end
  redis.call('HSET', key, 's', 'half_open', 'tr', now + trial)
  return {'half_open', f, 0, 1, e}
end
if tr <= now then
  redis.call('HSET', key, 'tr', now + trial)
  return {s, f, 0, 1, e}
end
return {s, f, 0, 0, e}
"""
)
FAILURE = (
    _COMMON
    + """
local threshold = tonumber(ARGV[3])
if ARGV[4] ~= '' then
  e = ARGV[4]
  redis.call('HSET', key, 'e', e)
end
if s == 'open' then return {s, f, math.max(0, o + reset - now), 0, e} end
if s == 'half_open' or f + 1 >= threshold then
  redis.call('HSET', key, 's', 'open', 'o', now, 'f', 0, 'tr', 0)
  return {'open', 0, reset, 0, e}
end
redis.call('HSET', key, 'f', f + 1)
return {s, f + 1, 0, 1, e}
"""
)
SUCCESS = (
    _COMMON
    + """
redis.call('HSET', key, 's', 'closed', 'f', 0, 'tr', 0)
return {'closed', 0, 0, 1, e}
"""
)
RELEASE = (
    _COMMON
    + """
if s == 'half_open' then redis.call('HSET', key, 'tr', 0) end
return {s, f, 0, 1, e}
"""
)
_SCRIPTS = {"claim": CLAIM, "failure": FAILURE, "success": SUCCESS, "release": RELEASE}


@dataclass
class SharedBreaker:
    """One upstream's breaker as this replica sees it (see the module docstring)."""

    board: SharedCircuitBoard
    upstream: str
    local: CircuitBreaker
    """The mirror of the shared state; this replica's own breaker while Redis is down."""
    synced_at: float = float("-inf")

    @property
    def state(self) -> CircuitState:
        """Closed, open or half-open, as last read from Redis."""
        return self.local.state

    @property
    def last_error(self) -> str | None:
        """The latest failure on any replica, as last read."""
        return self.local.last_error

    def _fresh(self) -> bool:
        return self.board.clock() - self.synced_at < self.board.shared.settings.sync_s

    async def acquire(self) -> bool:
        """Whether a call may go to this upstream now (claims the half-open trial, for
        every replica)."""
        local = self.local
        if self._fresh():
            if local.state is CircuitState.CLOSED:
                return True
            if (
                local.state is CircuitState.OPEN
                and self.board.clock() - local.opened_at < local.reset_after_s
            ):
                return False
        trial_ms = round(self.board.settings.reset_after_s * 1000)
        answer = await self.board.run("claim", self.upstream, trial_ms)
        if answer is None:
            if self.board.shared.fail_closed:
                raise self.board.shared.refuse("the upstream's circuit breaker")
            return local.allow()
        allowed = self._apply(answer)
        local.trial_in_flight = allowed and local.state is CircuitState.HALF_OPEN
        return allowed

    async def succeeded(self) -> None:
        """Close the circuit for every replica (no Redis call when it was closed with no
        failure counted)."""
        if self.local.state is CircuitState.CLOSED and self.local.failures == 0:
            return
        answer = await self.board.run("success", self.upstream)
        if answer is None:
            self.local.success()
        else:
            self._apply(answer)
        self.local.trial_in_flight = False

    async def failed(self, reason: str | None = None) -> None:
        """Count a failure for every replica (opening the circuit at the threshold)."""
        threshold = self.board.settings.failure_threshold
        answer = await self.board.run("failure", self.upstream, threshold, reason or "")
        if answer is None:
            self.local.failure(reason)
        else:
            self._apply(answer)
        self.local.trial_in_flight = False

    def release(self) -> None:
        """Give a half-open trial this replica claimed back (in the background: this runs
        when a call is cancelled)."""
        if not self.local.trial_in_flight:
            return
        self.local.release()
        self.board.background(self.board.run("release", self.upstream))

    def _apply(self, answer: Any) -> bool:
        """Copy Redis's answer into the mirror; returns whether the call is allowed."""
        state, failures, open_ms, allowed, error = answer
        local = self.local
        local.state = CircuitState(str(state))
        local.failures = int(failures)
        now = self.board.clock()
        if local.state is CircuitState.OPEN:
            # Opened (reset - left) ago, in this replica's clock.
            local.opened_at = now - (local.reset_after_s - int(open_ms) / 1000)
        local.last_error = str(error) or local.last_error
        self.synced_at = now
        return bool(int(allowed))


@dataclass
class SharedCircuitBoard:
    """The breakers replicas share, one per upstream (created on first use)."""

    shared: SharedState
    settings: CircuitSettings = field(default_factory=CircuitSettings)
    clock: Callable[[], float] = time.monotonic
    breakers: dict[str, SharedBreaker] = field(default_factory=dict)
    _scripts: dict[str, Any] = field(default_factory=dict)
    _client: Any = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def get(self, upstream: str) -> SharedBreaker:
        """``upstream``'s breaker."""
        breaker = self.breakers.get(upstream)
        if breaker is None:
            local = CircuitBreaker(
                self.settings.failure_threshold, self.settings.reset_after_s, self.clock
            )
            breaker = self.breakers[upstream] = SharedBreaker(self, upstream, local)
        # Settings may have been reloaded since the breaker was made.
        breaker.local.failure_threshold = self.settings.failure_threshold
        breaker.local.reset_after_s = self.settings.reset_after_s
        return breaker

    async def run(self, name: str, upstream: str, *args: int | str) -> Any:
        """Script ``name`` on ``upstream``'s hash; ``None`` when Redis failed."""
        keys = [self.shared.key("cb", upstream), self.shared.key("cb")]
        argv = [round(self.settings.reset_after_s * 1000), upstream, *args]

        async def call(client: Any) -> Any:
            if client is not self._client:
                self._scripts = {n: client.register_script(s) for n, s in _SCRIPTS.items()}
                self._client = client
            return await self._scripts[name](keys=keys, args=argv)

        return await self.shared.call("circuit", call)

    def background(self, coro: Any) -> None:
        """Run ``coro`` on its own, kept referenced until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def states(self) -> dict[str, CircuitState]:
        """Upstream -> state of every breaker in Redis (this replica's mirrors while Redis
        is down)."""

        async def read(client: Any) -> dict[str, CircuitState]:
            names = sorted(await client.smembers(self.shared.key("cb")))
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hget(self.shared.key("cb", name), "s")
                values = await pipe.execute()
            return {n: CircuitState(v or "closed") for n, v in zip(names, values, strict=True)}

        found = await self.shared.call("circuit", read)
        if found is None:
            return {name: b.state for name, b in self.breakers.items()}
        return found
