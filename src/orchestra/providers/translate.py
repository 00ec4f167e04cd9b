"""Translation between Anthropic Messages and OpenAI Chat Completions (first version: API)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestra.providers.sse import SSEEvent

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "anthropic_error_to_openai",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "openai_error_to_anthropic",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
    "to_anthropic_stop_reason",
    "to_openai_finish_reason",
]

ANTHROPIC_TO_OPENAI_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
OPENAI_TO_ANTHROPIC_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def to_openai_finish_reason(reason: str) -> str:
    """An OpenAI ``finish_reason`` for an Anthropic ``stop_reason`` (OpenAI values pass)."""
    return ANTHROPIC_TO_OPENAI_FINISH.get(reason, reason)


def to_anthropic_stop_reason(reason: str) -> str:
    """An Anthropic ``stop_reason`` for an OpenAI ``finish_reason`` (Anthropic values pass)."""
    return OPENAI_TO_ANTHROPIC_STOP.get(reason, reason)


def anthropic_to_openai_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI Chat Completions request."""
    raise NotImplementedError


def openai_to_anthropic_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion as an Anthropic Messages response."""
    raise NotImplementedError


def openai_to_anthropic_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI Chat Completions request as an Anthropic Messages request."""
    raise NotImplementedError


def anthropic_to_openai_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages response as an OpenAI chat completion."""
    raise NotImplementedError


def anthropic_error_to_openai(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    """An Anthropic error response as the OpenAI error a client of that format expects."""
    raise NotImplementedError


def openai_error_to_anthropic(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    """An OpenAI error response as the Anthropic error a client of that format expects."""
    raise NotImplementedError


class OpenAIToAnthropicStream:
    """Incrementally turns an OpenAI chunk stream into Anthropic Messages events."""

    def __init__(self, *, model: str | None = None, input_tokens: int = 0) -> None:
        self.model = model
        self.input_tokens = input_tokens

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        """Events to send for one upstream event."""
        raise NotImplementedError

    def finish(self) -> list[SSEEvent]:
        """Events closing the stream when the upstream ended (cleanly or not)."""
        raise NotImplementedError


class AnthropicToOpenAIStream:
    """Incrementally turns an Anthropic Messages event stream into OpenAI chunks."""

    def __init__(self, *, model: str | None = None, include_usage: bool = False) -> None:
        self.model = model
        self.include_usage = include_usage

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        """Chunks to send for one upstream event."""
        raise NotImplementedError

    def finish(self) -> list[SSEEvent]:
        """Chunks closing the stream (ends with ``data: [DONE]``)."""
        raise NotImplementedError
