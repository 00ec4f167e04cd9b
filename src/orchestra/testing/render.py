"""Render a scripted :class:`Reply` in each wire format, as a whole body or as stream events."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from orchestra.providers import (
    anthropic_usage_json,
    encode_event,
    to_anthropic_stop_reason,
    to_openai_finish_reason,
)
from orchestra.providers.usage import Usage
from orchestra.testing.steps import Reply, ToolCall

__all__ = [
    "IdSource",
    "anthropic_events",
    "anthropic_message",
    "openai_chunks",
    "openai_completion",
]


@dataclass
class IdSource:
    """Deterministic ids (``msg_fake_000001`` …); ``itertools.count`` is atomic under the GIL,
    so handlers on any thread may share one."""

    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next(self, prefix: str) -> str:
        """The next id with this prefix (the counter is shared by every prefix)."""
        return f"{prefix}{next(self._counter):06d}"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> str:
    # One shared encoder: json.dumps with arguments builds a new one per call.
    return _ENCODER.encode(value)


dumps = _dumps


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _arguments(call: ToolCall) -> str:
    """The call's argument text: as written (cut off, or malformed on purpose) or encoded."""
    return call.raw_arguments if call.raw_arguments is not None else _dumps(call.input)


def _tool_ids(reply: Reply, ids: IdSource, prefix: str) -> list[tuple[ToolCall, str]]:
    return [(call, call.id or ids.next(prefix)) for call in reply.tool_calls]


# --- Anthropic -----------------------------------------------------------------------------


def _stop_reason(reply: Reply) -> str:
    if reply.stop_reason:
        return to_anthropic_stop_reason(reply.stop_reason)
    return "tool_use" if reply.tool_calls else "end_turn"


def anthropic_message(reply: Reply, model: str, usage: Usage, ids: IdSource) -> dict[str, Any]:
    """A non-streaming Messages response."""
    content: list[dict[str, Any]] = []
    if reply.thinking is not None:
        content.append(
            {"type": "thinking", "thinking": reply.thinking, "signature": ids.next("sig_fake_")}
        )
    if reply.text or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    for call, call_id in _tool_ids(reply, ids, "toolu_fake_"):
        content.append({"type": "tool_use", "id": call_id, "name": call.name, "input": call.input})
    return {
        "id": ids.next("msg_fake_"),
        "type": "message",
        "role": "assistant",
        "model": reply.model or model,
        "content": content,
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": anthropic_usage_json(usage),
    }


def anthropic_events(reply: Reply, model: str, usage: Usage, ids: IdSource) -> list[bytes]:
    """The encoded event stream of a Messages response, in the API's exact order."""
    events: list[tuple[str, dict[str, Any]]] = []
    start_usage = anthropic_usage_json(
        Usage(usage.input_tokens, 1, usage.cache_read_tokens, usage.cache_write_tokens)
    )
    events.append(
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": ids.next("msg_fake_"),
                    "type": "message",
                    "role": "assistant",
                    "model": reply.model or model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
    )
    index = 0
    if reply.thinking is not None:
        events.append(_block_start(index, {"type": "thinking", "thinking": "", "signature": ""}))
        events.append(("ping", {"type": "ping"}))
        for piece in _chunks(reply.thinking, reply.chunk_chars):
            events.append(_block_delta(index, {"type": "thinking_delta", "thinking": piece}))
        signature = ids.next("sig_fake_")
        events.append(_block_delta(index, {"type": "signature_delta", "signature": signature}))
        events.append(_block_stop(index))
        index += 1
    if reply.text or not reply.tool_calls:
        events.append(_block_start(index, {"type": "text", "text": ""}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        for piece in _chunks(reply.text, reply.chunk_chars):
            events.append(_block_delta(index, {"type": "text_delta", "text": piece}))
        events.append(_block_stop(index))
        index += 1
    for call, call_id in _tool_ids(reply, ids, "toolu_fake_"):
        block = {"type": "tool_use", "id": call_id, "name": call.name, "input": {}}
        events.append(_block_start(index, block))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        for piece in _chunks(_arguments(call), reply.chunk_chars):
            events.append(_block_delta(index, {"type": "input_json_delta", "partial_json": piece}))
        events.append(_block_stop(index))
        index += 1
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                "usage": anthropic_usage_json(usage),
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    encoded = [encode_event(name, _dumps(data)) for name, data in events]
    for injected in sorted(reply.inject, key=lambda i: i.after, reverse=True):
        encoded.insert(
            min(injected.after, len(encoded)), encode_event(injected.event, injected.data)
        )
    return encoded


def _block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


# --- OpenAI --------------------------------------------------------------------------------


def _openai_usage(usage: Usage) -> dict[str, Any]:
    # OpenAI counts cached (and, having no such notion, cache-written) tokens in prompt_tokens.
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(reply: Reply) -> str:
    if reply.stop_reason:
        return to_openai_finish_reason(reply.stop_reason)
    return "tool_calls" if reply.tool_calls else "stop"


def openai_completion(
    reply: Reply, model: str, usage: Usage, ids: IdSource, created: int
) -> dict[str, Any]:
    """A non-streaming ``chat.completion``."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if (reply.text or not reply.tool_calls) else None,
        "refusal": None,
        "annotations": [],
    }
    calls = _tool_ids(reply, ids, "call_fake_")
    if calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments(call)},
            }
            for call, call_id in calls
        ]
    return {
        "id": ids.next("chatcmpl-fake"),
        "object": "chat.completion",
        "created": created,
        "model": reply.model or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(reply),
            }
        ],
        "usage": _openai_usage(usage),
        "service_tier": "default",
        "system_fingerprint": "fp_orchestra_fake",
    }


def openai_chunks(
    reply: Reply, model: str, usage: Usage, ids: IdSource, created: int, include_usage: bool
) -> list[bytes]:
    """The encoded ``chat.completion.chunk`` stream, ending with ``data: [DONE]``."""
    base: dict[str, Any] = {
        "id": ids.next("chatcmpl-fake"),
        "object": "chat.completion.chunk",
        "created": created,
        "model": reply.model or model,
        "service_tier": "default",
        "system_fingerprint": "fp_orchestra_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body = dict(base)
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if include_usage:
            body["usage"] = None
        return body

    chunks: list[dict[str, Any]] = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if reply.text:
        for piece in _chunks(reply.text, reply.chunk_chars):
            chunks.append(chunk({"content": piece}))
    for position, (call, call_id) in enumerate(_tool_ids(reply, ids, "call_fake_")):
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": position,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        for piece in _chunks(_arguments(call), reply.chunk_chars):
            chunks.append(
                chunk({"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
            )
    chunks.append(chunk({}, _finish_reason(reply)))
    if include_usage:
        final = dict(base)
        final["choices"] = []
        final["usage"] = _openai_usage(usage)
        chunks.append(final)
    encoded = [encode_event(None, _dumps(c)) for c in chunks]
    encoded.append(encode_event(None, "[DONE]"))
    for injected in sorted(reply.inject, key=lambda i: i.after, reverse=True):
        encoded.insert(
            min(injected.after, len(encoded)), encode_event(injected.event, injected.data)
        )
    return encoded
