"""Rate limits counted in Redis, so that N per minute holds over every gateway replica.

The window is the one :mod:`orchestra.accounting.limits` keeps in memory or in the
database: a sliding minute approximated from two fixed one-minute counters (the current
minute's, plus the previous one's weighted by how much of it still overlaps the last 60
seconds). One Lua script per request checks every subject the call counts against and, only
if none would go over, counts it on all of them: atomic in Redis, so replicas never
interleave between the check and the count. Time is Redis's own (``TIME``), so replicas on
machines with different clocks agree on the minute.

Keys: ``{prefix}:rl:{subject}:{minute}``, a hash of requests and tokens, expiring after
150 s. The script derives the minute keys itself, so it needs one Redis (a primary, with
replicas if wanted), not Redis Cluster.
"""

from __future__ import annotations

from typing import Any

from orchestra.accounting import Attribution, RateLimited, RateLimiter, RateLimitPolicy
from orchestra.accounting.attribution import PerAttribution
from orchestra.accounting.limits import RateLimit
from orchestra.gateway.accounts import Caller
from orchestra.gateway.errors import LimitRefused
from orchestra.gateway.shared_state import SharedState
from orchestra.gateway.store_accountant import rate_limit_refusal

CHECK_AND_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local minute = math.floor(now / 60)
local elapsed = now - minute * 60
local weight = 1 - elapsed / 60
local retry = math.max(1, math.ceil(60 - elapsed))
local tokens = tonumber(ARGV[1])
for i, base in ipairs(KEYS) do
  local rpm = tonumber(ARGV[2 * i])
  local tpm = tonumber(ARGV[2 * i + 1])
  local prev = redis.call('HMGET', base .. ':' .. (minute - 1), 'r', 't')
  local cur = redis.call('HMGET', base .. ':' .. minute, 'r', 't')
  local pr, pt = tonumber(prev[1] or 0), tonumber(prev[2] or 0)
  local cr, ct = tonumber(cur[1] or 0), tonumber(cur[2] or 0)
  if rpm >= 0 and pr * weight + cr + 1 > rpm then
    return {i, 'requests', rpm, retry}
  end
  if tpm >= 0 and tokens > 0 and pt * weight + ct + tokens > tpm then
    return {i, 'tokens', tpm, retry}
  end
end
for _, base in ipairs(KEYS) do
  local key = base .. ':' .. minute
  redis.call('HINCRBY', key, 'r', 1)
  redis.call('HINCRBY', key, 't', tokens)
  redis.call('EXPIRE', key, 150)
end
return {0}
"""


def _attribution(caller: Caller) -> Attribution:
    """Accounting's attribution of ``caller`` (built from the key when it has none)."""
    if isinstance(caller.attribution, Attribution):
        return caller.attribution
    return Attribution(developer=caller.developer, squad=caller.team, key_id=caller.key_id)


def _refusal(subject: str, kind: str, limit: int, retry_after_s: float) -> LimitRefused:
    """The 429 the accountant's own limits answer with, word for word."""
    limited = RateLimited(f"{subject} {kind}", limit=limit, retry_after_s=retry_after_s)
    return rate_limit_refusal(limited)


class SharedRateLimits:
    """``gateway.limits`` counted in Redis for every replica (``on_error: open``: in this
    process's memory while Redis is down)."""

    def __init__(self, shared: SharedState, policy: RateLimitPolicy) -> None:
        self.shared = shared
        self.policy = policy
        """Replaced on reload (:meth:`orchestra.gateway.Gateway.reload`)."""
        self._subjects = PerAttribution(RateLimitPolicy.subjects)
        self._local = RateLimiter(policy)
        self._script: Any = None
        self._script_client: Any = None

    def subjects(self, caller: Caller) -> list[tuple[str, RateLimit]]:
        """The limited subjects (key, developer, team) ``caller``'s calls count against."""
        return self._subjects.get(self.policy, _attribution(caller))

    async def check(self, caller: Caller, tokens: int) -> None:
        """Count one call of ``tokens`` (estimated) tokens, or raise :class:`LimitRefused`
        (429) naming the limit; :class:`~orchestra.gateway.errors.SharedStateUnavailable`
        (503) when Redis is down and ``on_error`` is ``closed``."""
        subjects = self.subjects(caller)
        if not subjects:
            return
        tokens = max(0, tokens)
        keys = [self.shared.key("rl", subject) for subject, _ in subjects]
        args: list[int] = [tokens]
        for _, lim in subjects:
            args += [lim.rpm if lim.rpm is not None else -1, lim.tpm if lim.tpm is not None else -1]

        async def run(client: Any) -> Any:
            return await self._registered(client)(keys=keys, args=args)

        answer = await self.shared.call("rate_limit", run)
        if answer is None:
            self._fallback(caller, tokens)
            return
        if int(answer[0]) != 0:
            subject = subjects[int(answer[0]) - 1][0]
            raise _refusal(subject, str(answer[1]), int(answer[2]), float(answer[3]))

    def _registered(self, client: Any) -> Any:
        """The script, registered with ``client`` (EVALSHA, EVAL if Redis forgot it)."""
        if self._script is None or self._script_client is not client:
            self._script = client.register_script(CHECK_AND_COUNT)
            self._script_client = client
        return self._script

    def _fallback(self, caller: Caller, tokens: int) -> None:
        if self.shared.fail_closed:
            raise self.shared.refuse("rate limits")
        self._local.policy = self.policy
        try:
            self._local.check_and_count(_attribution(caller), tokens)
        except RateLimited as exc:
            raise rate_limit_refusal(exc) from exc
