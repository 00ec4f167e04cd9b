"""Request translation: Anthropic Messages <-> OpenAI Chat Completions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestra.providers.translate._common import (
    bad_request,
    dumps,
    guarded,
    lst,
    obj,
    parse_arguments,
    text_of,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "anthropic_to_openai_request",
    "openai_to_anthropic_request",
]

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` is required by Anthropic; used when an OpenAI client sent none."""

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.S)
_DROPPED_ANTHROPIC_BLOCKS = frozenset({"thinking", "redacted_thinking"})


# --- Anthropic -> OpenAI -------------------------------------------------------------------


@guarded("Anthropic Messages request", upstream=False)
def anthropic_to_openai_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI Chat Completions request.

    Thinking blocks in the history and ``cache_control`` markers are dropped (the other format
    has no place for them); server tools and document blocks are refused with a 400.
    """
    body = obj(body, "the request body")
    out: dict[str, Any] = {"model": text_of(body.get("model"), "'model'")}
    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for position, message in enumerate(lst(body.get("messages"), "'messages'")):
        message = obj(message, f"messages[{position}]")
        role = message.get("role")
        if role == "user":
            messages.extend(_user_to_openai(message.get("content"), position))
        elif role == "assistant":
            messages.append(_assistant_to_openai(message.get("content"), position))
        elif role == "system":
            # Mid-conversation system messages (a Claude Code beta) keep their place.
            text = _system_text(message.get("content"))
            messages.append({"role": "system", "content": text})
        else:
            raise bad_request(f"messages[{position}].role must be 'user', 'assistant' or 'system'")
    out["messages"] = messages
    if body.get("max_tokens") is not None:
        out["max_tokens"] = _positive_int(body["max_tokens"], "'max_tokens'")
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = _number(body[key], f"'{key}'")
    stops = body.get("stop_sequences")
    if stops:
        out["stop"] = [text_of(s, "'stop_sequences' entries") for s in lst(stops, "stops")]
    tools = lst(body.get("tools"), "'tools'")
    if tools:
        out["tools"] = [_tool_to_openai(tool, i) for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        choice = obj(choice, "'tool_choice'")
        out["tool_choice"] = _tool_choice_to_openai(choice)
        if choice.get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    if body.get("stream") is True:
        out["stream"] = True
        # Accounting needs the final usage, which OpenAI sends only when asked.
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    return out


def _system_text(system: Any) -> str:
    return _joined_text(system, "system", "a text block", "\n\n", array="'system'")


def _joined_text(
    content: Any, where: str, kind: str, separator: str, *, array: str | None = None
) -> str:
    """A string, or the texts of a list of text blocks (Anthropic) or parts (OpenAI) joined
    by ``separator``; any other block is refused, naming it at ``where[index]``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for index, block in enumerate(lst(content, array or where)):
        at = f"{where}[{index}]"
        block = obj(block, at)
        if block.get("type") != "text":
            raise bad_request(f"{at} must be {kind}")
        texts.append(text_of(block.get("text"), f"{at}.text"))
    return separator.join(texts)


def _blocks(content: Any, where: str) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [obj(b, f"{where}[{i}]") for i, b in enumerate(lst(content, where))]


def _image_to_openai(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = obj(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media = text_of(source.get("media_type"), f"{where}.source.media_type")
        data = text_of(source.get("data"), f"{where}.source.data")
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        url = text_of(source.get("url"), f"{where}.source.url")
    else:
        raise bad_request(f"{where}: image source type {kind!r} cannot be sent to OpenAI")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_to_openai(content: Any, position: int) -> list[dict[str, Any]]:
    where = f"messages[{position}].content"
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(_blocks(content, where)):
        kind = block.get("type")
        at = f"{where}[{index}]"
        if kind == "text":
            parts.append({"type": "text", "text": text_of(block.get("text"), f"{at}.text")})
        elif kind == "image":
            parts.append(_image_to_openai(block, at))
        elif kind == "tool_result":
            text, images = _tool_result_content(block.get("content"), at)
            if block.get("is_error") is True:
                text = f"Error: {text}" if text else "Error"
            tool_messages.append(
                {
                    "role": "tool",
                    "tool_call_id": text_of(block.get("tool_use_id"), f"{at}.tool_use_id"),
                    "content": text,
                }
            )
            # OpenAI tool messages carry text only; images ride in the next user message.
            parts.extend(images)
        elif kind in _DROPPED_ANTHROPIC_BLOCKS:
            continue
        else:
            raise bad_request(f"{at}: content block type {kind!r} cannot be sent to OpenAI")
    messages = list(tool_messages)
    if parts:
        if isinstance(content, str) or (len(parts) == 1 and parts[0]["type"] == "text"):
            messages.append({"role": "user", "content": parts[0]["text"]})
        else:
            messages.append({"role": "user", "content": parts})
    elif not tool_messages:
        messages.append({"role": "user", "content": ""})
    return messages


def _tool_result_content(content: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for index, block in enumerate(_blocks(content, f"{where}.content")):
        at = f"{where}.content[{index}]"
        if block.get("type") == "text":
            texts.append(text_of(block.get("text"), f"{at}.text"))
        elif block.get("type") == "image":
            images.append(_image_to_openai(block, at))
        else:
            raise bad_request(f"{at}: tool result block {block.get('type')!r} is not supported")
    return "\n".join(texts), images


def _assistant_to_openai(content: Any, position: int) -> dict[str, Any]:
    where = f"messages[{position}].content"
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(_blocks(content, where)):
        kind = block.get("type")
        at = f"{where}[{index}]"
        if kind == "text":
            texts.append(text_of(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            arguments = block.get("input", {})
            calls.append(
                {
                    "id": text_of(block.get("id"), f"{at}.id"),
                    "type": "function",
                    "function": {
                        "name": text_of(block.get("name"), f"{at}.name"),
                        "arguments": dumps(obj(arguments, f"{at}.input")),
                    },
                }
            )
        elif kind in _DROPPED_ANTHROPIC_BLOCKS:
            continue
        else:
            raise bad_request(f"{at}: content block type {kind!r} cannot be sent to OpenAI")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool_to_openai(tool: Any, index: int) -> dict[str, Any]:
    tool = obj(tool, f"tools[{index}]")
    if "input_schema" not in tool:
        raise bad_request(
            f"tools[{index}] ({tool.get('type', 'server tool')}) is an Anthropic server tool; "
            "only custom tools with an input_schema can be sent to an OpenAI upstream"
        )
    function: dict[str, Any] = {
        "name": text_of(tool.get("name"), f"tools[{index}].name"),
        "parameters": dict(obj(tool["input_schema"], f"tools[{index}].input_schema")),
    }
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice_to_openai(choice: Mapping[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        name = text_of(choice.get("name"), "'tool_choice.name'")
        return {"type": "function", "function": {"name": name}}
    raise bad_request(f"unknown tool_choice type {kind!r}")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"{what} must be a positive integer")
    return value


def _number(value: Any, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{what} must be a number")
    return value


# --- OpenAI -> Anthropic -------------------------------------------------------------------


@guarded("OpenAI Chat Completions request", upstream=False)
def openai_to_anthropic_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI Chat Completions request as an Anthropic Messages request.

    System and developer messages become ``system``; tool messages become ``tool_result``
    blocks; consecutive messages of one role are merged, as Anthropic requires alternation.
    ``n > 1``, ``logprobs`` and structured ``response_format`` are refused with a 400;
    ``temperature`` above 1 is clamped to Anthropic's maximum of 1.
    """
    body = obj(body, "the request body")
    n = body.get("n")
    if n not in (None, 1):
        raise bad_request("'n' > 1 cannot be served by an Anthropic upstream")
    if body.get("logprobs"):
        raise bad_request("'logprobs' cannot be served by an Anthropic upstream")
    response_format = body.get("response_format")
    if response_format is not None and obj(response_format, "'response_format'").get(
        "type"
    ) not in ("text", None):
        raise bad_request("'response_format' other than text cannot be served by Anthropic")
    out: dict[str, Any] = {"model": text_of(body.get("model"), "'model'")}
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(lst(body.get("messages"), "'messages'")):
        message = obj(message, f"messages[{position}]")
        role = message.get("role")
        where = f"messages[{position}]"
        if role in ("system", "developer"):
            system.append(_openai_text(message.get("content"), f"{where}.content"))
        elif role == "user":
            _append(turns, "user", _openai_user_blocks(message.get("content"), where))
        elif role == "assistant":
            _append(turns, "assistant", _openai_assistant_blocks(message, where))
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": text_of(message.get("tool_call_id"), f"{where}.tool_call_id"),
                "content": _openai_text(message.get("content"), f"{where}.content"),
            }
            _append(turns, "user", [block])
        else:
            raise bad_request(f"{where}.role {role!r} cannot be sent to Anthropic")
    if system:
        out["system"] = "\n\n".join(system)
    out["messages"] = turns
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    out["max_tokens"] = (
        DEFAULT_MAX_TOKENS if max_tokens is None else _positive_int(max_tokens, "'max_tokens'")
    )
    if body.get("temperature") is not None:
        out["temperature"] = min(1.0, max(0.0, float(_number(body["temperature"], "temp"))))
    if body.get("top_p") is not None:
        out["top_p"] = _number(body["top_p"], "'top_p'")
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif stop:
        out["stop_sequences"] = [text_of(s, "'stop' entries") for s in lst(stop, "'stop'")]
    tools = lst(body.get("tools"), "'tools'")
    if tools:
        out["tools"] = [_openai_tool(tool, i) for i, tool in enumerate(tools)]
    choice = _openai_tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and tools:
        choice = dict(choice or {"type": "auto"})
        choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("stream") is True:
        out["stream"] = True
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    return out


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _openai_text(content: Any, where: str) -> str:
    return _joined_text(content, where, "a text part here", "\n")


def _openai_user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(lst(content, f"{where}.content")):
        at = f"{where}.content[{index}]"
        part = obj(part, at)
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": text_of(part.get("text"), f"{at}.text")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            url = text_of(url, f"{at}.image_url.url")
            match = _DATA_URL.match(url)
            if match:
                source = {
                    "type": "base64",
                    "media_type": match["media"],
                    "data": match["data"],
                }
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
        else:
            raise bad_request(f"{at}: content part type {kind!r} cannot be sent to Anthropic")
    return blocks


def _openai_assistant_blocks(message: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _openai_text(message.get("content"), f"{where}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for index, call in enumerate(lst(message.get("tool_calls"), f"{where}.tool_calls")):
        at = f"{where}.tool_calls[{index}]"
        call = obj(call, at)
        function = obj(call.get("function"), f"{at}.function")
        blocks.append(
            {
                "type": "tool_use",
                "id": text_of(call.get("id"), f"{at}.id"),
                "name": text_of(function.get("name"), f"{at}.function.name"),
                "input": parse_arguments(
                    function.get("arguments"), f"{at}.function.arguments", upstream=False
                ),
            }
        )
    if not blocks:
        blocks.append({"type": "text", "text": ""})
    return blocks


def _openai_tool(tool: Any, index: int) -> dict[str, Any]:
    tool = obj(tool, f"tools[{index}]")
    if tool.get("type") != "function":
        raise bad_request(f"tools[{index}].type must be 'function'")
    function = obj(tool.get("function"), f"tools[{index}].function")
    parameters = function.get("parameters")
    out: dict[str, Any] = {
        "name": text_of(function.get("name"), f"tools[{index}].function.name"),
        "input_schema": dict(obj(parameters, "parameters"))
        if parameters is not None
        else {"type": "object", "properties": {}},
    }
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out


def _openai_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    choice = obj(choice, "'tool_choice'")
    function = obj(choice.get("function"), "'tool_choice.function'")
    return {"type": "tool", "name": text_of(function.get("name"), "'tool_choice' name")}
