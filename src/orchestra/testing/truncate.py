"""A scripted reply cut to the request's ``max_tokens``, as a real model's would be.

A model that reaches ``max_tokens`` stops mid-sentence or mid-tool-call and says so
(Anthropic ``stop_reason: "max_tokens"``, OpenAI ``finish_reason: "length"``). The fake
does the same to a scripted :class:`~orchestra.testing.Reply` whose output is longer than
the request allows: thinking, text and tool calls are kept in order until the tokens run
out (counted with the same estimate as the reply's usage); the piece being written then is
cut, and whatever follows is dropped. A tool call cut short keeps the arguments written so
far as :attr:`~orchestra.testing.ToolCall.raw_arguments` (incomplete JSON, streamed and in
OpenAI's ``arguments`` as is) and, as ``input``, only the arguments that were complete.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from orchestra.providers import estimate_text_tokens
from orchestra.testing.render import dumps
from orchestra.testing.steps import Reply, ToolCall

__all__ = ["cut_to_max_tokens", "output_estimate", "requested_max_tokens"]


def requested_max_tokens(body: dict[str, Any], openai: bool) -> int | None:
    """The output limit a request sets (``max_tokens``; OpenAI also
    ``max_completion_tokens``), or ``None``."""
    keys = ("max_completion_tokens", "max_tokens") if openai else ("max_tokens",)
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _call_text(call: ToolCall) -> str:
    return call.raw_arguments if call.raw_arguments is not None else dumps(call.input)


def _cost(call: ToolCall) -> int:
    # json.dumps' spacing, as the fake has always counted a call's arguments.
    text = call.raw_arguments if call.raw_arguments is not None else json.dumps(call.input)
    return estimate_text_tokens(call.name) + estimate_text_tokens(text)


def output_estimate(reply: Reply, text_tokens: int | None = None) -> int:
    """The reply's output tokens by estimate (what its usage reports when not scripted);
    ``text_tokens``: the text's estimate, when the caller has it."""
    if text_tokens is None:
        text_tokens = estimate_text_tokens(reply.text)
    total = text_tokens + estimate_text_tokens(reply.thinking or "")
    return max(1, total + sum(_cost(call) for call in reply.tool_calls))


def _prefix(text: str, budget: float) -> str:
    """The longest start of ``text`` whose estimate fits ``budget`` tokens."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_text_tokens(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _complete_arguments(arguments: dict[str, Any], written: int) -> dict[str, Any]:
    """The arguments whose encoding ended within the first ``written`` characters."""
    kept: dict[str, Any] = {}
    so_far: dict[str, Any] = {}
    for key, value in arguments.items():
        so_far[key] = value
        if len(dumps(so_far)) - 1 > written:  # -1: the closing brace is not an argument
            break
        kept[key] = value
    return kept


def _cut_call(call: ToolCall, budget: float) -> ToolCall:
    text = _prefix(_call_text(call), budget - estimate_text_tokens(call.name))
    try:
        parsed = json.loads(text)
        complete = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        complete = _complete_arguments(call.input, len(text))
    return replace(call, input=complete, raw_arguments=text)


def cut_to_max_tokens(reply: Reply, limit: int) -> Reply | None:
    """``reply`` cut to ``limit`` output tokens with stop reason ``max_tokens``, or ``None``
    when it fits. With scripted ``usage``, its ``output_tokens`` is the reply's length and
    the content is cut in proportion."""
    estimate = output_estimate(reply)
    declared = reply.usage.output_tokens if reply.usage is not None else estimate
    if declared <= limit:
        return None
    budget = limit * estimate / max(1, declared)
    thinking = reply.thinking
    if thinking is not None:
        cost = estimate_text_tokens(thinking)
        if cost > budget:
            return replace(
                reply,
                thinking=_prefix(thinking, budget),
                text="",
                tool_calls=(),
                stop_reason="max_tokens",
            )
        budget -= cost
    cost = estimate_text_tokens(reply.text)
    if cost > budget:
        return replace(
            reply, text=_prefix(reply.text, budget), tool_calls=(), stop_reason="max_tokens"
        )
    budget -= cost
    calls: list[ToolCall] = []
    for call in reply.tool_calls:
        cost = _cost(call)
        if cost > budget:
            calls.append(_cut_call(call, budget))
            break
        calls.append(call)
        budget -= cost
    return replace(reply, tool_calls=tuple(calls), stop_reason="max_tokens")
