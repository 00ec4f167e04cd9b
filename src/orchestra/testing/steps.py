"""What the fake upstream does with one request: the scriptable steps.

Steps are plain frozen dataclasses so scripts read like the behaviour they describe::

    up.script(Fault(status=529), Reply(text="recovered"))

Script files and the ``/_fake/script`` control endpoint accept the same steps as JSON
(parsed with Pydantic, since they come from outside the process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestra.errors import OrchestraError
from orchestra.providers.usage import Usage

__all__ = [
    "DropMidStream",
    "Fault",
    "InjectedEvent",
    "Match",
    "RecordedRequest",
    "Reply",
    "ScriptError",
    "Step",
    "StreamError",
    "Timeout",
    "ToolCall",
    "load_script",
    "parse_script",
]


class ScriptError(OrchestraError):
    """A fake-upstream script (file or control request) is malformed."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the fake model makes (Anthropic ``tool_use`` / OpenAI ``tool_calls``)."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    """Call id; generated (``toolu_…`` or ``call_…``) when not given."""
    raw_arguments: str | None = None
    """The argument text as the model wrote it, sent instead of ``input`` encoded where the
    format carries text (stream deltas, OpenAI ``arguments``): a call cut off at
    ``max_tokens``, or malformed JSON scripted on purpose. A whole Anthropic reply still
    carries ``input``."""


@dataclass(frozen=True, slots=True)
class InjectedEvent:
    """An extra raw SSE event inserted into a stream, e.g. an event type clients do not know
    yet, to prove a proxy passes it through untouched."""

    after: int
    """Insert after this many regular events (0 = before ``message_start``)."""
    data: str
    event: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful model reply, rendered in the format of the request (JSON or a stream)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] | list[ToolCall] = ()
    usage: Usage | None = None
    """Reported token usage; computed from the request and reply size when ``None``."""
    stop_reason: str | None = None
    """Anthropic ``stop_reason`` or OpenAI ``finish_reason`` (either vocabulary; mapped);
    defaults to ``tool_use``/``tool_calls`` with tool calls, else ``end_turn``/``stop``."""
    delay_s: float = 0.0
    """Wait this long before answering (time to first byte)."""
    chunk_delay_s: float = 0.0
    """Wait this long between stream events (on a fixed schedule: event ``i`` leaves
    ``i * chunk_delay_s`` after the first, however late the one before it left)."""
    thinking: str | None = None
    """Emit a thinking block before the text (Anthropic only)."""
    model: str | None = None
    """Model name to report; the requested model when ``None``."""
    chunk_chars: int = 16
    """Largest text or tool-argument delta in a stream."""
    inject: tuple[InjectedEvent, ...] | list[InjectedEvent] = ()
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers."""


@dataclass(frozen=True, slots=True)
class Fault:
    """An error response in the request's format (or ``body`` verbatim when given)."""

    status: int
    retry_after: float | None = None
    """Sent as the ``retry-after`` header (seconds)."""
    body: dict[str, Any] | str | None = None
    message: str | None = None
    error_type: str | None = None
    """Overrides the error type derived from ``status``."""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers, e.g. ``{"x-should-retry": "false"}``, which the SDKs honour."""


@dataclass(frozen=True, slots=True)
class Timeout:
    """Accept the request and never answer (until the client gives up or the server stops)."""


@dataclass(frozen=True, slots=True)
class DropMidStream:
    """Close the connection after ``after_events`` events of ``reply`` (for a non-streaming
    request: after sending the headers and half of the body)."""

    after_events: int = 2
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """Start streaming ``reply``, then after ``after_events`` events send an error *inside*
    the stream (Anthropic ``event: error``; OpenAI ``data: {"error": ...}``) and end it, as
    the real APIs do when they fail after answering 200. A non-streaming request gets the
    plain error response instead."""

    after_events: int = 3
    status: int = 529
    """Selects the error type (529: ``overloaded_error``)."""
    message: str | None = None
    reply: Reply | None = None


Step = Reply | Fault | Timeout | DropMidStream | StreamError


@dataclass(frozen=True, slots=True)
class Match:
    """Which requests a scripted step may answer; unset fields match anything."""

    model: str | None = None
    system_contains: str | None = None
    """Substring of the system prompt (Anthropic ``system`` or OpenAI system messages)."""
    path: str | None = None
    """Exact request path, e.g. ``/v1/chat/completions``."""
    stream: bool | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the fake upstream received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ``", "``."""
    json: Any
    """The decoded body, or ``None`` when it was empty or not JSON."""
    body: bytes = b""

    @property
    def model(self) -> str | None:
        """The ``model`` field of the body, if any."""
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def stream(self) -> bool:
        """Whether the body asked for a streamed reply (``"stream": true``)."""
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def system_text(self) -> str:
        """The system prompt as plain text, in either format."""
        if not isinstance(self.json, dict):
            return ""
        system = self.json.get("system")
        parts: list[str] = []
        if isinstance(system, str):
            parts.append(system)
        elif isinstance(system, list):
            parts.extend(b.get("text", "") for b in system if isinstance(b, dict))
        for message in self.json.get("messages") or []:
            if isinstance(message, dict) and message.get("role") in ("system", "developer"):
                content = message.get("content")
                if isinstance(content, str):
                    parts.append(content)
                elif isinstance(content, list):
                    parts.extend(b.get("text", "") for b in content if isinstance(b, dict))
        return "\n".join(p for p in parts if isinstance(p, str))


# --- JSON scripts -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _UsageIn(_Strict):
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)


class _ToolCallIn(_Strict):
    name: str
    input: dict[str, Any] = {}
    id: str | None = None
    raw_arguments: str | None = None


class _InjectIn(_Strict):
    after: int = Field(ge=0)
    data: str
    event: str | None = None


class _ReplyIn(_Strict):
    text: str = ""
    tool_calls: list[_ToolCallIn] = []
    usage: _UsageIn | None = None
    stop_reason: str | None = None
    delay_s: float = Field(default=0.0, ge=0)
    chunk_delay_s: float = Field(default=0.0, ge=0)
    thinking: str | None = None
    model: str | None = None
    chunk_chars: int = Field(default=16, ge=1)
    inject: list[_InjectIn] = []
    headers: dict[str, str] = {}

    def build(self) -> Reply:
        return Reply(
            text=self.text,
            tool_calls=tuple(
                ToolCall(c.name, c.input, c.id, c.raw_arguments) for c in self.tool_calls
            ),
            usage=Usage(**self.usage.model_dump()) if self.usage else None,
            stop_reason=self.stop_reason,
            delay_s=self.delay_s,
            chunk_delay_s=self.chunk_delay_s,
            thinking=self.thinking,
            model=self.model,
            chunk_chars=self.chunk_chars,
            inject=tuple(InjectedEvent(i.after, i.data, i.event) for i in self.inject),
            headers=dict(self.headers),
        )


class _FaultIn(_Strict):
    status: int = Field(ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    body: dict[str, Any] | str | None = None
    message: str | None = None
    error_type: str | None = None
    delay_s: float = Field(default=0.0, ge=0)
    headers: dict[str, str] = {}


class _DropIn(_Strict):
    after_events: int = Field(default=2, ge=0)
    reply: _ReplyIn | None = None


class _StreamErrorIn(_Strict):
    after_events: int = Field(default=3, ge=0)
    status: int = Field(default=529, ge=400, le=599)
    message: str | None = None
    reply: _ReplyIn | None = None


class _MatchIn(_Strict):
    model: str | None = None
    system_contains: str | None = None
    path: str | None = None
    stream: bool | None = None


class _EntryIn(_Strict):
    reply: _ReplyIn | None = None
    fault: _FaultIn | None = None
    timeout: dict[str, Any] | None = None
    drop: _DropIn | None = None
    stream_error: _StreamErrorIn | None = None
    match: _MatchIn | None = None
    times: int = Field(default=1, ge=1, le=100_000)
    """Queue the step this many times."""

    def build(self) -> list[tuple[Step, Match | None]]:
        chosen = [k for k in ("reply", "fault", "timeout", "drop") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("each step needs exactly one of: reply, fault, timeout, drop")
        step: Step
        if self.reply is not None:
            step = self.reply.build()
        elif self.fault is not None:
            step = Fault(**self.fault.model_dump())
        elif self.drop is not None:
            reply = self.drop.reply.build() if self.drop.reply else None
            step = DropMidStream(self.drop.after_events, reply)
        elif self.stream_error is not None:
            spec = self.stream_error
            reply = spec.reply.build() if spec.reply else None
            step = StreamError(spec.after_events, spec.status, spec.message, reply)
        else:
            step = Timeout()
        match = Match(**self.match.model_dump()) if self.match else None
        return [(step, match)] * self.times


_ENTRIES = TypeAdapter(list[_EntryIn])


def parse_script(data: Any) -> list[tuple[Step, Match | None]]:
    """Steps from decoded JSON: a list of ``{"reply"|"fault"|"timeout"|"drop"|"stream_error": {...},
    "match": {...}?, "times": n?}`` objects."""
    try:
        entries = _ENTRIES.validate_python(data)
        return [pair for entry in entries for pair in entry.build()]
    except (ValidationError, ValueError) as exc:
        raise ScriptError(
            f"invalid fake upstream script: {exc}",
            hint='write a JSON list such as [{"reply": {"text": "hi"}}, {"fault": {"status": 529}}]',  # noqa: E501
        ) from exc


def load_script(path: Path) -> list[tuple[Step, Match | None]]:
    """Steps from a JSON script file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"cannot read script {path}: {exc}", hint="check the path") from exc
    except ValueError as exc:
        raise ScriptError(f"script {path} is not JSON: {exc}", hint="fix the JSON") from exc
    return parse_script(data)
