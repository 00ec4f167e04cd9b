"""OpenAI Chat Completions wire format: usage extraction, stream tracking and error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestra.providers.errors import upstream_fault
from orchestra.providers.sse import SSEEvent
from orchestra.providers.usage import Usage, token_count

__all__ = [
    "DONE",
    "ERROR_CODES",
    "ERROR_TYPES",
    "StreamUsageTracker",
    "error_body",
    "error_type_for_status",
    "usage_from_chunk",
    "usage_from_completion",
    "usage_from_usage_object",
]

DONE = "[DONE]"
"""The ``data`` of the sentinel event that ends an OpenAI stream."""

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
"""OpenAI's ``error.type`` for client-side statuses; 5xx use ``server_error``."""

ERROR_CODES: dict[int, str] = {
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
}


def error_type_for_status(status: int) -> str:
    """The OpenAI ``error.type`` matching an HTTP status."""
    if status >= 500:
        return "server_error"
    return ERROR_TYPES.get(status, "invalid_request_error")


def error_body(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """An error body exactly as the OpenAI API sends it."""
    return {
        "error": {
            "message": message,
            "type": error_type or error_type_for_status(status),
            "param": param,
            "code": code if code is not None else ERROR_CODES.get(status),
        }
    }


def usage_from_usage_object(usage: Any) -> Usage | None:
    """Convert an OpenAI ``usage`` object; ``None`` when the reply carried none.

    OpenAI counts cached tokens inside ``prompt_tokens``; they are subtracted so that
    ``input_tokens`` excludes cache reads, as :class:`Usage` requires. OpenAI has no notion of
    cache writes, so ``cache_write_tokens`` is always 0.
    """
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        raise upstream_fault(f"'usage' is not an object: {type(usage).__name__}")
    prompt = token_count(usage, "prompt_tokens")
    details = usage.get("prompt_tokens_details")
    cached = token_count(details, "cached_tokens") if isinstance(details, Mapping) else 0
    # Some OpenAI-compatible servers report cached > prompt; never go negative.
    cached = min(cached, prompt)
    return Usage(
        input_tokens=prompt - cached,
        output_tokens=token_count(usage, "completion_tokens"),
        cache_read_tokens=cached,
    )


def usage_from_completion(completion: Any) -> Usage | None:
    """Usage of a non-streaming chat completion, ``None`` if the server sent none."""
    if not isinstance(completion, Mapping):
        raise upstream_fault("the chat completion is not a JSON object")
    return usage_from_usage_object(completion.get("usage"))


def usage_from_chunk(chunk: Any) -> Usage | None:
    """Usage carried by one ``chat.completion.chunk`` (the last one, with
    ``stream_options.include_usage``), ``None`` for the chunks without it."""
    if not isinstance(chunk, Mapping):
        raise upstream_fault("a chat.completion.chunk is not a JSON object")
    return usage_from_usage_object(chunk.get("usage"))


@dataclass
class StreamUsageTracker:
    """Follows a Chat Completions stream: usage, finish reason, and an output estimate.

    Servers send usage only in the final chunk (and only when asked with
    ``stream_options.include_usage``); :meth:`usage_so_far` estimates output tokens from the
    streamed text until then.
    """

    usage: Usage | None = None
    model: str | None = None
    completion_id: str | None = None
    finish_reason: str | None = None
    done: bool = False
    """``data: [DONE]`` seen: the stream completed normally."""
    error: dict[str, Any] | None = None
    chunks: int = 0
    streamed_chars: int = 0

    def feed(self, event: SSEEvent) -> None:
        """Account for one event of the stream."""
        if event.data == DONE:
            self.done = True
            return
        try:
            payload = json.loads(event.data)
        except ValueError as exc:
            raise upstream_fault("a chat completion stream event is not JSON") from exc
        if isinstance(payload, Mapping):
            self.feed_json(payload)

    def feed_json(self, chunk: Mapping[str, Any]) -> None:
        """Account for one already-decoded chunk."""
        self.chunks += 1
        if "error" in chunk and isinstance(chunk["error"], Mapping):
            self.error = dict(chunk["error"])
            return
        if self.completion_id is None and isinstance(chunk.get("id"), str):
            self.completion_id = chunk["id"]
        if self.model is None and isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        usage = usage_from_usage_object(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, Mapping):
                continue
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, Mapping):
                continue
            for key in ("content", "reasoning_content", "refusal"):
                if isinstance(delta.get(key), str):
                    self.streamed_chars += len(delta[key])
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    function = call.get("function") if isinstance(call, Mapping) else None
                    if isinstance(function, Mapping):
                        for key in ("name", "arguments"):
                            if isinstance(function.get(key), str):
                                self.streamed_chars += len(function[key])

    def usage_so_far(self, input_estimate: int = 0) -> Usage:
        """Reported usage, or ``input_estimate`` plus an output estimate from streamed text."""
        if self.usage is not None:
            return self.usage
        return Usage(input_tokens=input_estimate, output_tokens=(self.streamed_chars + 3) // 4)
