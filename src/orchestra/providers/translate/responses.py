"""Response and error translation: Anthropic Messages <-> OpenAI Chat Completions."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from orchestra.providers import anthropic as anthropic_wire
from orchestra.providers import openai as openai_wire
from orchestra.providers.translate._common import (
    bad_reply,
    dumps,
    guarded,
    lst,
    obj,
    parse_arguments,
    text_of,
    to_anthropic_stop_reason,
    to_openai_finish_reason,
)
from orchestra.providers.usage import Usage

__all__ = [
    "anthropic_error_to_openai",
    "anthropic_to_openai_response",
    "anthropic_usage_json",
    "openai_error_to_anthropic",
    "openai_to_anthropic_response",
    "openai_usage_json",
]


def anthropic_usage_json(usage: Usage) -> dict[str, int]:
    """:class:`Usage` as an Anthropic ``usage`` object."""
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def openai_usage_json(usage: Usage) -> dict[str, Any]:
    """:class:`Usage` as an OpenAI ``usage`` object (cache tokens inside ``prompt_tokens``)."""
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


@guarded("OpenAI chat completion", upstream=True)
def openai_to_anthropic_response(
    body: Mapping[str, Any], *, model: str | None = None
) -> dict[str, Any]:
    """An OpenAI chat completion as an Anthropic Messages response.

    ``model``: the name to report (the one the client asked for); the upstream's otherwise.
    """
    body = obj(body, "the chat completion", upstream=True)
    choices = lst(body.get("choices"), "'choices'", upstream=True)
    if not choices:
        raise bad_reply("the chat completion has no choices")
    choice = obj(choices[0], "choices[0]", upstream=True)
    message = obj(choice.get("message"), "choices[0].message", upstream=True)
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(
            p.get("text", "") for p in text if isinstance(p, Mapping) and p.get("type") == "text"
        )
    if text:
        content.append({"type": "text", "text": text_of(text, "message.content", upstream=True)})
    calls = lst(message.get("tool_calls"), "message.tool_calls", upstream=True)
    for index, call in enumerate(calls):
        at = f"message.tool_calls[{index}]"
        call = obj(call, at, upstream=True)
        function = obj(call.get("function"), f"{at}.function", upstream=True)
        call_id = call.get("id")
        content.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{index}",
                "name": text_of(function.get("name"), f"{at}.function.name", upstream=True),
                "input": parse_arguments(
                    function.get("arguments"), f"{at}.function.arguments", upstream=True
                ),
            }
        )
    if not content:
        content.append({"type": "text", "text": ""})
    finish = choice.get("finish_reason")
    if isinstance(finish, str):
        stop_reason = to_anthropic_stop_reason(finish)
    else:
        stop_reason = "tool_use" if calls else "end_turn"
    if calls and stop_reason == "end_turn":
        # Some local servers report "stop" after a tool call; clients key on tool_use.
        stop_reason = "tool_use"
    usage = openai_wire.usage_from_usage_object(body.get("usage")) or Usage()
    upstream_id = body.get("id")
    return {
        "id": f"msg_{upstream_id}" if isinstance(upstream_id, str) else "msg_translated",
        "type": "message",
        "role": "assistant",
        "model": model or (body.get("model") if isinstance(body.get("model"), str) else ""),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage_json(usage),
    }


@guarded("Anthropic Messages response", upstream=True)
def anthropic_to_openai_response(
    body: Mapping[str, Any], *, model: str | None = None, created: int | None = None
) -> dict[str, Any]:
    """An Anthropic Messages response as an OpenAI chat completion (thinking is dropped)."""
    body = obj(body, "the Messages response", upstream=True)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(lst(body.get("content"), "'content'", upstream=True)):
        block = obj(block, f"content[{index}]", upstream=True)
        kind = block.get("type")
        if kind == "text":
            texts.append(text_of(block.get("text"), f"content[{index}].text", upstream=True))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": text_of(block.get("id"), f"content[{index}].id", upstream=True),
                    "type": "function",
                    "function": {
                        "name": text_of(block.get("name"), f"content[{index}].name", upstream=True),
                        "arguments": dumps(
                            obj(block.get("input", {}), "tool input", upstream=True)
                        ),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if (texts or not calls) else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    reason = body.get("stop_reason")
    finish = to_openai_finish_reason(reason) if isinstance(reason, str) else "stop"
    usage = anthropic_wire.usage_from_usage_object(body.get("usage"))
    upstream_id = body.get("id")
    return {
        "id": f"chatcmpl-{upstream_id}" if isinstance(upstream_id, str) else "chatcmpl-translated",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model or (body.get("model") if isinstance(body.get("model"), str) else ""),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": openai_usage_json(usage),
    }


_ANTHROPIC_TO_OPENAI_STATUS = {529: 503}


def _error_message(body: Any, default: str) -> tuple[str, str | None]:
    """``(message, type)`` from either format's error body, or from a bare string."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        return (body.strip() or default)[:2000], None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = error.get("message")
            kind = error.get("type")
            return (
                message if isinstance(message, str) and message else default,
                kind if isinstance(kind, str) else None,
            )
        if isinstance(error, str) and error:  # Ollama: {"error": "model not found"}
            return error, None
        message = body.get("message") or body.get("detail")
        if isinstance(message, str) and message:
            return message, None
    return default, None


def anthropic_error_to_openai(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    """An Anthropic error response as the OpenAI error (status and body) its client expects.

    529 (overloaded) becomes 503, which OpenAI clients know to retry.
    """
    message, kind = _error_message(body, f"upstream error {status}")
    out_status = _ANTHROPIC_TO_OPENAI_STATUS.get(status, status)
    error_type = None
    code = None
    if kind == "overloaded_error":
        error_type, code = "server_error", "overloaded"
    return out_status, openai_wire.error_body(out_status, message, error_type=error_type, code=code)


def openai_error_to_anthropic(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    """An OpenAI (or OpenAI-compatible server's) error as the Anthropic error its client expects."""
    message, _ = _error_message(body, f"upstream error {status}")
    return status, anthropic_wire.error_body(status, message)
