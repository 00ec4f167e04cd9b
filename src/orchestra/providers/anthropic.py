"""Anthropic Messages wire format: usage extraction, stream tracking and error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestra.providers.errors import WireFormatError, upstream_fault
from orchestra.providers.sse import SSEEvent
from orchestra.providers.usage import Usage, token_count

__all__ = [
    "ERROR_TYPES",
    "StreamUsageTracker",
    "error_body",
    "error_type_for_status",
    "usage_from_message",
    "usage_from_usage_object",
]

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's ``error.type`` for each HTTP status it uses."""


def error_type_for_status(status: int) -> str:
    """The Anthropic ``error.type`` matching an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An error body exactly as the Anthropic API sends it."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type or error_type_for_status(status), "message": message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


def usage_from_usage_object(usage: Any) -> Usage:
    """Convert an Anthropic ``usage`` object; absent or ``null`` fields count as 0."""
    if usage is None:
        return Usage()
    if not isinstance(usage, Mapping):
        raise upstream_fault(f"'usage' is not an object: {type(usage).__name__}")
    return Usage(
        input_tokens=token_count(usage, "input_tokens"),
        output_tokens=token_count(usage, "output_tokens"),
        cache_read_tokens=token_count(usage, "cache_read_input_tokens"),
        cache_write_tokens=token_count(usage, "cache_creation_input_tokens"),
    )


def usage_from_message(message: Any) -> Usage:
    """Usage of a non-streaming Messages response (``input_tokens`` already excludes cache)."""
    if not isinstance(message, Mapping):
        raise upstream_fault("the Messages response is not a JSON object")
    return usage_from_usage_object(message.get("usage"))


@dataclass
class StreamUsageTracker:
    """Follows an Anthropic Messages event stream and accumulates what accounting needs.

    ``message_start`` carries the input side (and cache tokens); ``message_delta`` carries
    cumulative counts (output, and on newer API versions the input side again), so later
    values replace earlier ones. Until ``message_delta`` arrives, :meth:`usage_so_far`
    estimates output tokens from the text streamed so far, which is what a gateway journals
    to reconcile a stream cut off by a crash.
    """

    usage: Usage = field(default_factory=Usage)
    """Usage as reported by the stream so far."""
    message_id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    started: bool = False
    """``message_start`` seen."""
    finished: bool = False
    """``message_stop`` seen: the stream completed normally."""
    delta_seen: bool = False
    """``message_delta`` seen: ``usage.output_tokens`` is final."""
    error: dict[str, Any] | None = None
    """The ``error`` object of an in-stream ``error`` event, if any."""
    events: int = 0
    streamed_chars: int = 0
    """Characters of text, thinking and tool input streamed so far."""

    def feed(self, event: SSEEvent) -> None:
        """Account for one event; events of unknown types are ignored, never rejected."""
        self.events += 1
        name = event.event
        if name is not None and name not in _INTERESTING:
            return
        try:
            payload = json.loads(event.data)
        except ValueError as exc:
            raise upstream_fault(f"Anthropic stream event {name!r} is not JSON") from exc
        if isinstance(payload, Mapping):
            self.feed_json(payload)

    def feed_json(self, payload: Mapping[str, Any]) -> None:
        """Account for one already-decoded event payload."""
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message")
            if not isinstance(message, Mapping):
                raise upstream_fault("message_start without a message object")
            self.started = True
            self.message_id = _str_or_none(message.get("id"))
            self.model = _str_or_none(message.get("model"))
            self.usage = usage_from_usage_object(message.get("usage"))
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping):
                for key in ("text", "partial_json", "thinking"):
                    piece = delta.get(key)
                    if isinstance(piece, str):
                        self.streamed_chars += len(piece)
        elif kind == "message_delta":
            self.delta_seen = True
            delta = payload.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
                self.stop_reason = _str_or_none(delta.get("stop_reason"))
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                self.usage = _merge(self.usage, usage)
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            error = payload.get("error")
            self.error = dict(error) if isinstance(error, Mapping) else {"type": "api_error"}

    def usage_so_far(self) -> Usage:
        """Reported usage, with output tokens estimated from streamed text if not yet final."""
        if self.delta_seen:
            return self.usage
        estimate = (self.streamed_chars + 3) // 4
        return Usage(
            input_tokens=self.usage.input_tokens,
            output_tokens=max(self.usage.output_tokens, estimate),
            cache_read_tokens=self.usage.cache_read_tokens,
            cache_write_tokens=self.usage.cache_write_tokens,
        )


_INTERESTING = frozenset(
    {"message_start", "message_delta", "message_stop", "content_block_delta", "error"}
)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _merge(current: Usage, update: Mapping[str, Any]) -> Usage:
    """Apply a cumulative ``message_delta`` usage: present fields replace, absent ones stay."""

    def pick(key: str, old: int) -> int:
        return token_count(update, key) if update.get(key) is not None else old

    return Usage(
        input_tokens=pick("input_tokens", current.input_tokens),
        output_tokens=pick("output_tokens", current.output_tokens),
        cache_read_tokens=pick("cache_read_input_tokens", current.cache_read_tokens),
        cache_write_tokens=pick("cache_creation_input_tokens", current.cache_write_tokens),
    )


def require_object(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, or a 400 :class:`WireFormatError` naming ``what``."""
    if not isinstance(value, Mapping):
        raise WireFormatError(
            f"{what} must be a JSON object, got {type(value).__name__}",
            hint="send a body following the Anthropic Messages API reference",
        )
    return value
