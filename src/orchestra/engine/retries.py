"""When the agent loop waits and tries a model call again: rate limits and overloads.

A gateway (or any Anthropic-compatible server) that answers 429 for a rate limit, or
529/503 because it is overloaded, usually says how long to wait: a ``retry-after`` header
(seconds or an HTTP date), ``retry-after-ms``, or a sentence in the error body ("Please
try again in 1.5s", as OpenAI-compatible servers write it). :func:`retry_hint` reads those;
:class:`ModelRetry` decides whether and how long to wait, within bounds (attempts, one
wait, all waits together), with an injectable ``sleep`` so tests never wait for real.

A budget refusal is never retried (waiting does not refill a run's budget), nor is a
client error (400, 401, 403, 404, 413): the same request would fail the same way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""Statuses that clear with time: timeouts, the same call still in progress at the gateway
(409, under its ``Idempotency-Key``), rate limits, server errors, overloads."""
RETRYABLE_ERROR_TYPES = frozenset(
    {"rate_limit_error", "overloaded_error", "api_error", "timeout_error"}
)
"""Anthropic error types that clear with time (also inside a 200 stream's error event)."""

_TRY_AGAIN = re.compile(
    r"(?:try again|retry) in (\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?)\b", re.I
)


@dataclass(frozen=True)
class RetryHint:
    """What an error response says about trying again."""

    retryable: bool
    """The status (or error type) is one that clears with time."""
    wait_s: float | None = None
    """How long the server asked to wait, when it said."""


def _header_wait(headers: Mapping[str, str], now: Callable[[], datetime]) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            value = float(milliseconds) / 1000
            if value >= 0:
                return value
        except ValueError:
            pass
    seconds = headers.get("retry-after")
    if not seconds:
        return None
    try:
        value = float(seconds)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(seconds)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def _body_wait(message: str) -> float | None:
    match = _TRY_AGAIN.search(message)
    if match is None:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2).lower().startswith("m") else value


def _utcnow() -> datetime:
    return datetime.now(UTC)


def retry_hint(
    status: int,
    headers: Mapping[str, str],
    body: Any,
    *,
    now: Callable[[], datetime] = _utcnow,
) -> RetryHint:
    """Whether an error response (``status``, lower-cased ``headers``, decoded JSON
    ``body``) may be retried and after how long (headers first, then the body's words)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "")
    code = str(error.get("code") or "")
    message = str(error.get("message") or "")
    should = headers.get("x-should-retry", "").lower()
    if "budget" in f"{message} {code}".lower():
        return RetryHint(False)  # a spent budget does not refill by waiting
    retryable = status in RETRYABLE_STATUSES or kind in RETRYABLE_ERROR_TYPES
    if should in {"true", "false"}:
        retryable = should == "true"
    wait = _header_wait(headers, now)
    if wait is None:
        wait = _body_wait(message)
    return RetryHint(retryable, wait)


Sleep = Callable[[float], None]


@dataclass(frozen=True)
class ModelRetry:
    """How the agent loop retries a model call that failed in a way that clears with time.

    Bounded three ways: ``max_attempts`` calls in all, no single wait longer than
    ``max_wait_s`` (a server asking for longer is not waited for: the step fails with its
    message), and at most ``max_total_wait_s`` of waiting for one call. Without a hint from
    the server the waits grow exponentially from ``base_delay_s``.
    """

    max_attempts: int = 4
    base_delay_s: float = 1.0
    max_wait_s: float = 60.0
    max_total_wait_s: float = 120.0
    sleep: Sleep = field(default=time.sleep, compare=False)
    """How to wait (injected by tests, which then never sleep for real)."""

    def delay(self, attempt: int, hint: RetryHint, waited_s: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1), or
        ``None`` when the call must not be tried again."""
        if not hint.retryable or attempt >= self.max_attempts:
            return None
        wait = hint.wait_s
        if wait is None:
            wait = min(self.max_wait_s, self.base_delay_s * 2.0 ** (attempt - 1))
        if wait > self.max_wait_s or waited_s + wait > self.max_total_wait_s:
            return None
        return wait
