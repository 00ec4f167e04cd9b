"""Streaming translation as incremental, stateful translators (one per response stream).

Each translator takes the upstream's events one at a time and returns the events to send to
the client now, so a gateway adds no buffering: text and tool-argument deltas go out as they
arrive. ``finish()`` is called when the upstream stream ends; it closes the client's stream
properly, or with an error event when the upstream ended before completing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from orchestra.providers import anthropic as anthropic_wire
from orchestra.providers import openai as openai_wire
from orchestra.providers.sse import SSEEvent
from orchestra.providers.translate._common import (
    bad_reply,
    dumps,
    guarded,
    to_anthropic_stop_reason,
    to_openai_finish_reason,
)
from orchestra.providers.translate.responses import anthropic_usage_json, openai_usage_json
from orchestra.providers.usage import Usage

__all__ = ["AnthropicToOpenAIStream", "OpenAIToAnthropicStream"]


def _event(name: str, payload: dict[str, Any]) -> SSEEvent:
    return SSEEvent(name, dumps(payload))


def _decode(event: SSEEvent) -> Mapping[str, Any]:
    try:
        payload = json.loads(event.data)
    except ValueError as exc:
        raise bad_reply(f"stream event {event.event or 'message'!r} is not JSON") from exc
    if not isinstance(payload, Mapping):
        raise bad_reply("a stream event is not a JSON object")
    return payload


class OpenAIToAnthropicStream:
    """Turns an OpenAI ``chat.completion.chunk`` stream into Anthropic Messages events.

    ``model`` is the name reported to the client; ``input_tokens`` the estimate shown in
    ``message_start`` (OpenAI reports usage only at the end; the final ``message_delta`` carries
    the real counts).
    """

    def __init__(self, *, model: str | None = None, input_tokens: int = 0) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.usage: Usage | None = None
        """Usage reported by the upstream (``None`` until its final chunk)."""
        self.finish_reason: str | None = None
        self.done = False
        self._started = False
        self._index = -1  # index of the open Anthropic content block, -1 when none is open
        self._open_kind: str | None = None
        self._tools: dict[Any, int] = {}  # OpenAI tool call key -> Anthropic block index
        self._open_tool: Any = None
        self._streamed_chars = 0
        self._blocks = 0

    @guarded("OpenAI stream chunk", upstream=True)
    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        """Events to send for one upstream event."""
        if self.done:
            return []
        if event.data.strip() == openai_wire.DONE:
            return self.finish()
        chunk = _decode(event)
        out: list[SSEEvent] = []
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, Mapping) else str(error)
            self.done = True
            return [
                _event(
                    "error",
                    anthropic_wire.error_body(500, str(message or "upstream stream error")),
                )
            ]
        if not self._started:
            out.extend(self._start(chunk))
        usage = openai_wire.usage_from_usage_object(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices:
            choice = choices[0]
            if isinstance(choice, Mapping):
                delta = choice.get("delta")
                if isinstance(delta, Mapping):
                    out.extend(self._delta(delta))
                if isinstance(choice.get("finish_reason"), str):
                    self.finish_reason = choice["finish_reason"]
                    out.extend(self._close_block())
        return out

    def finish(self) -> list[SSEEvent]:
        """Close the stream: ``message_delta`` and ``message_stop`` if the upstream finished,
        an ``error`` event if it stopped before saying why."""
        if self.done:
            return []
        self.done = True
        out: list[SSEEvent] = []
        if not self._started:
            out.extend(self._start({}))
        out.extend(self._close_block())
        if self.finish_reason is None:
            out.append(
                _event(
                    "error",
                    anthropic_wire.error_body(
                        502, "the upstream stream ended before the reply was complete"
                    ),
                )
            )
            return out
        reason = to_anthropic_stop_reason(self.finish_reason)
        if self._tools and reason == "end_turn":
            reason = "tool_use"
        usage = self.usage or Usage(
            input_tokens=self.input_tokens, output_tokens=(self._streamed_chars + 3) // 4
        )
        out.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": anthropic_usage_json(usage),
                },
            )
        )
        out.append(_event("message_stop", {"type": "message_stop"}))
        return out

    def _start(self, chunk: Mapping[str, Any]) -> list[SSEEvent]:
        self._started = True
        upstream_id = chunk.get("id")
        model = self.model or (chunk.get("model") if isinstance(chunk.get("model"), str) else "")
        message: dict[str, Any] = {
            "id": f"msg_{upstream_id}" if isinstance(upstream_id, str) else "msg_translated",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage_json(Usage(input_tokens=self.input_tokens, output_tokens=1)),
        }
        return [
            _event("message_start", {"type": "message_start", "message": message}),
            _event("ping", {"type": "ping"}),
        ]

    def _open(self, block: dict[str, Any], kind: str) -> list[SSEEvent]:
        out = self._close_block()
        self._index = self._blocks
        self._blocks += 1
        self._open_kind = kind
        out.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )
        return out

    def _close_block(self) -> list[SSEEvent]:
        if self._open_kind is None:
            return []
        index = self._index
        self._open_kind = None
        self._open_tool = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _block_delta(self, delta: dict[str, Any]) -> SSEEvent:
        return _event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def _delta(self, delta: Mapping[str, Any]) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self._open_kind != "text":
                out.extend(self._open({"type": "text", "text": ""}, "text"))
            self._streamed_chars += len(text)
            out.append(self._block_delta({"type": "text_delta", "text": text}))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, Mapping):
                    out.extend(self._tool_delta(call, position))
        return out

    def _tool_key(self, call: Mapping[str, Any], position: int) -> Any:
        """Which tool call a delta belongs to: its ``index``; failing that (some local servers
        omit it), its ``id``; failing both, the call being streamed."""
        index = call.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            return index
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id:
            return ("id", call_id)
        if self._open_tool is not None:
            return self._open_tool
        return ("position", position)

    def _tool_delta(self, call: Mapping[str, Any], position: int) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        key = self._tool_key(call, position)
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        if key not in self._tools:
            name = function.get("name")
            call_id = call.get("id")
            block = {
                "type": "tool_use",
                "id": call_id
                if isinstance(call_id, str) and call_id
                else f"toolu_{len(self._tools)}",
                "name": name if isinstance(name, str) else "",
                "input": {},
            }
            out.extend(self._open(block, "tool"))
            self._tools[key] = self._index
            self._open_tool = key
        elif self._open_tool != key:
            raise bad_reply(
                "the upstream interleaved the arguments of several tool calls, which the "
                "Anthropic stream format cannot express"
            )
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):  # some servers send parsed arguments
            arguments = dumps(arguments)
        if isinstance(arguments, str) and arguments:
            self._streamed_chars += len(arguments)
            out.append(self._block_delta({"type": "input_json_delta", "partial_json": arguments}))
        return out


class AnthropicToOpenAIStream:
    """Turns an Anthropic Messages event stream into OpenAI ``chat.completion.chunk`` events.

    With ``include_usage`` (the client's ``stream_options.include_usage``) every chunk carries
    ``"usage": null`` and a final chunk with empty ``choices`` carries the usage, as OpenAI does.
    Thinking blocks are not forwarded (Chat Completions has no standard place for them).
    """

    def __init__(
        self, *, model: str | None = None, include_usage: bool = False, created: int | None = None
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.done = False
        self._id = "chatcmpl-translated"
        self._started = False
        self._tool_of_block: dict[int, int] = {}
        self._stopped = False

    @guarded("Anthropic stream event", upstream=True)
    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        """Chunks to send for one upstream event; unknown event types are skipped."""
        if self.done:
            return []
        payload = _decode(event)
        kind = payload.get("type", event.event)
        if kind == "message_start":
            return self._start(payload)
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
            tracker = anthropic_wire.StreamUsageTracker(usage=self.usage)
            tracker.feed_json(payload)
            self.usage = tracker.usage
            return []
        if kind == "message_stop":
            self._stopped = True
            return self.finish()
        if kind == "error":
            error = payload.get("error")
            message = error.get("message") if isinstance(error, Mapping) else None
            self.done = True
            body = openai_wire.error_body(500, str(message or "upstream stream error"))
            return [SSEEvent(None, dumps(body)), SSEEvent(None, openai_wire.DONE)]
        return []

    def finish(self) -> list[SSEEvent]:
        """The closing chunks (finish reason, usage if asked) and ``data: [DONE]``; an error
        chunk instead if the upstream ended without ``message_stop``."""
        if self.done:
            return []
        self.done = True
        out: list[SSEEvent] = []
        if not self._started:
            out.extend(self._start({}))
        if not self._stopped and self.stop_reason is None:
            body = openai_wire.error_body(
                502, "the upstream stream ended before the reply was complete"
            )
            return [*out, SSEEvent(None, dumps(body)), SSEEvent(None, openai_wire.DONE)]
        finish = to_openai_finish_reason(self.stop_reason or "end_turn")
        out.append(self._chunk({}, finish))
        if self.include_usage:
            final = self._base()
            final["choices"] = []
            final["usage"] = openai_usage_json(self.usage)
            out.append(SSEEvent(None, dumps(final)))
        out.append(SSEEvent(None, openai_wire.DONE))
        return out

    def _base(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model or "",
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> SSEEvent:
        body = self._base()
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self.include_usage:
            body["usage"] = None
        return SSEEvent(None, dumps(body))

    def _start(self, payload: Mapping[str, Any]) -> list[SSEEvent]:
        if self._started:
            return []
        self._started = True
        message = payload.get("message")
        if isinstance(message, Mapping):
            if isinstance(message.get("id"), str):
                self._id = f"chatcmpl-{message['id']}"
            if self.model is None and isinstance(message.get("model"), str):
                self.model = message["model"]
            self.usage = anthropic_wire.usage_from_usage_object(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: Mapping[str, Any]) -> list[SSEEvent]:
        out = self._start({}) if not self._started else []
        block = payload.get("content_block")
        index = payload.get("index")
        if not isinstance(block, Mapping):
            return out
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            out.append(self._chunk({"content": block["text"]}))
        elif block.get("type") == "tool_use" and isinstance(index, int):
            position = len(self._tool_of_block)
            self._tool_of_block[index] = position
            name = block.get("name")
            call = {
                "index": position,
                "id": block.get("id") if isinstance(block.get("id"), str) else f"call_{index}",
                "type": "function",
                "function": {"name": name if isinstance(name, str) else "", "arguments": ""},
            }
            out.append(self._chunk({"tool_calls": [call]}))
            initial = block.get("input")
            if isinstance(initial, Mapping) and initial:
                arguments = {"index": position, "function": {"arguments": dumps(initial)}}
                out.append(self._chunk({"tool_calls": [arguments]}))
        return out

    def _block_delta(self, payload: Mapping[str, Any]) -> list[SSEEvent]:
        out = self._start({}) if not self._started else []
        delta = payload.get("delta")
        if not isinstance(delta, Mapping):
            return out
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            out.append(self._chunk({"content": delta["text"]}))
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            position = self._tool_of_block.get(payload.get("index"))  # type: ignore[arg-type]
            if position is None:
                raise bad_reply("input_json_delta for a block that is not a tool_use block")
            if delta["partial_json"]:
                arguments = {"index": position, "function": {"arguments": delta["partial_json"]}}
                out.append(self._chunk({"tool_calls": [arguments]}))
        return out
