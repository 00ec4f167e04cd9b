"""How the fake upstream answers: replies, errors, token counts and model lists, rendered in
the wire format the request came in.

:class:`ReplyWriter` holds what answers share (the id source, the clock, and the cache of
encoded default replies); :class:`~orchestra.testing.FakeUpstream` decides which step
answers a request and hands it here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from orchestra.providers import anthropic as anthropic_wire
from orchestra.providers import estimate_input_tokens, estimate_text_tokens
from orchestra.providers import openai as openai_wire
from orchestra.providers.models import models_list_body
from orchestra.providers.sse import encode_event
from orchestra.providers.usage import Usage
from orchestra.testing.asgi import JSON_HEADERS, SSE_HEADERS, Send, send_bytes, send_json
from orchestra.testing.render import (
    IdSource,
    anthropic_events,
    anthropic_message,
    dumps,
    openai_chunks,
    openai_completion,
)
from orchestra.testing.steps import (
    DropMidStream,
    Fault,
    RecordedRequest,
    Reply,
    StreamError,
)
from orchestra.testing.truncate import cut_to_max_tokens, output_estimate, requested_max_tokens

__all__ = ["ReplyWriter"]


@dataclass(frozen=True)
class _Shape:
    """What a reply's encoding needs besides its content."""

    model: str
    usage: Usage
    created: int
    headers: list[tuple[bytes, bytes]]
    drop_after: int | None
    canned: str | None


class ReplyWriter:
    """Writes the fake's answers to ASGI ``send``; safe to share between requests."""

    def __init__(self, ids: IdSource, clock: Callable[[], float]) -> None:
        self._ids = ids
        self._clock = clock
        # Default replies are a pure function of the request body (and the second, for
        # OpenAI's "created"), so benchmarks hitting the fake with one body reuse the encoded
        # reply and only swap in a fresh id.
        self._canned: dict[tuple[str, bytes], _Canned] = {}

    async def answer(
        self,
        send: Send,
        request: RecordedRequest,
        body: dict[str, Any],
        step: Reply | Fault | DropMidStream | StreamError,
        openai: bool,
        default_text: str,
        canned: str | None = None,
    ) -> None:
        """Answer ``step`` in the request's format (a :class:`Timeout` is the caller's).

        ``canned``: the path, when this is a default reply worth remembering.
        """
        if isinstance(step, Fault):
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            await self.error(send, openai, step)
            return
        if isinstance(step, StreamError) and not request.stream:
            await self.error(send, openai, Fault(step.status, message=step.message))
            return
        drop_after: int | None = None
        error_after: int | None = None
        if isinstance(step, DropMidStream | StreamError):
            reply = step.reply or Reply(text=default_text)
            if isinstance(step, DropMidStream):
                drop_after = step.after_events
            else:
                error_after = step.after_events
        else:
            reply = step
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        model = body.get("model")
        model = model if isinstance(model, str) else "unknown"
        usage = reply.usage or self._usage_for(body, reply)
        limit = requested_max_tokens(body, openai) if canned is None else None
        if limit is not None:
            # A scripted reply longer than the request allows is cut, as a model's would be
            # (the fixed default reply is not: benchmarks rely on its exact bytes).
            cut = cut_to_max_tokens(reply, limit)
            if cut is not None:
                reply, usage = cut, replace(usage, output_tokens=limit)
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()
        ]
        created = int(self._clock())
        shape = _Shape(model, usage, created, headers, drop_after, canned)
        if request.stream:
            await self._stream(send, request, body, step, reply, openai, shape, error_after)
        else:
            await self._whole(send, request, reply, openai, shape)

    async def _stream(
        self,
        send: Send,
        request: RecordedRequest,
        body: dict[str, Any],
        step: Reply | DropMidStream | StreamError,
        reply: Reply,
        openai: bool,
        shape: _Shape,
        error_after: int | None,
    ) -> None:
        if openai:
            options = body.get("stream_options")
            include = isinstance(options, dict) and options.get("include_usage") is True
            events = openai_chunks(
                reply, shape.model, shape.usage, self._ids, shape.created, include
            )
        else:
            events = anthropic_events(reply, shape.model, shape.usage, self._ids)
        if isinstance(step, StreamError) and error_after is not None:
            events = [*events[:error_after], self._stream_error(step, openai)]
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": SSE_HEADERS + shape.headers,
        }
        drop_after = shape.drop_after
        if drop_after is None and not reply.chunk_delay_s:
            # Nothing to pace: one write for the whole stream (still chunked, still SSE).
            data = b"".join(events)
            if shape.canned is not None:
                self._remember(shape.canned, request.body, shape.created, True, data, events[0])
            await send(start)
            await send({"type": "http.response.body", "body": data})
            return
        await send(start)
        # Paced on a fixed schedule: an event sent late (a busy event loop) does not push
        # the ones after it back, so a stream lasts its events times the delay, as a model
        # decoding at a steady rate does (the capacity mode's service time depends on it).
        loop = asyncio.get_running_loop()
        begun = loop.time()
        for position, event in enumerate(events):
            if drop_after is not None and position >= drop_after:
                return  # returning mid-body makes the server close the connection
            if position and reply.chunk_delay_s:
                await asyncio.sleep(max(0.0, begun + position * reply.chunk_delay_s - loop.time()))
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _whole(
        self, send: Send, request: RecordedRequest, reply: Reply, openai: bool, shape: _Shape
    ) -> None:
        if openai:
            payload = openai_completion(reply, shape.model, shape.usage, self._ids, shape.created)
        else:
            payload = anthropic_message(reply, shape.model, shape.usage, self._ids)
        data = dumps(payload).encode()
        if shape.drop_after is not None:
            length = [(b"content-length", str(len(data)).encode())]
            await send(
                {"type": "http.response.start", "status": 200, "headers": JSON_HEADERS + length}
            )
            await send(
                {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
            )
            return
        if shape.canned is not None:
            self._remember(shape.canned, request.body, shape.created, False, data, data)
        await send_bytes(send, 200, data, JSON_HEADERS + shape.headers)

    def _stream_error(self, step: StreamError, openai: bool) -> bytes:
        message = step.message or _DEFAULT_MESSAGES.get(step.status, f"fake error {step.status}")
        if openai:
            return encode_event(None, dumps(openai_wire.error_body(step.status, message)))
        body = anthropic_wire.error_body(step.status, message)
        return encode_event("error", dumps(body))

    def _remember(
        self, path: str, body: bytes, created: int, stream: bool, data: bytes, head: bytes
    ) -> None:
        match = _ID.search(head)
        if match is None:
            return
        if len(self._canned) >= _CANNED_MAX:
            self._canned.clear()
        self._canned[(path, body)] = _Canned(created, stream, data, match.group(1).decode())

    async def send_canned(self, send: Send, path: str, body: bytes) -> bool:
        """Send the remembered default reply to this body, with a fresh id; False when there
        is none (or it was made in another second, so OpenAI's ``created`` would be stale)."""
        canned = self._canned.get((path, body))
        if canned is None or canned.created != int(self._clock()):
            return False
        old = canned.reply_id
        prefix = old.rstrip("0123456789")
        data = canned.data.replace(
            b'"' + old.encode() + b'"', b'"' + self._ids.next(prefix).encode() + b'"'
        )
        headers = SSE_HEADERS if canned.stream else JSON_HEADERS
        await send_bytes(send, 200, data, headers)
        return True

    def _usage_for(self, body: dict[str, Any], reply: Reply) -> Usage:
        output = output_estimate(reply, _text_tokens(reply.text))
        return Usage(input_tokens=estimate_input_tokens(body), output_tokens=output)

    async def count_tokens(self, send: Send, body: dict[str, Any], step: Reply) -> None:
        """Answer ``count_tokens``: the step's input tokens, else the estimate of ``body``."""
        tokens = estimate_input_tokens(body, "anthropic")
        if step.usage is not None:
            tokens = step.usage.input_tokens
        await send_json(send, 200, {"input_tokens": tokens})

    async def models(self, send: Send, names: tuple[str, ...]) -> None:
        """Answer ``GET /v1/models`` listing ``names``."""
        body = models_list_body(names, created=FAKE_MODELS_CREATED, owned_by="orchestra-fake")
        await send_json(send, 200, body)

    async def error(self, send: Send, openai: bool, fault: Fault) -> None:
        """Answer with ``fault``: its status, headers and body, or an error body in the
        request's format."""
        headers = list(JSON_HEADERS)
        if fault.retry_after is not None:
            value = fault.retry_after
            text = str(int(value)) if float(value).is_integer() else str(value)
            headers.append((b"retry-after", text.encode()))
        headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in fault.headers.items()
        )
        if fault.body is not None:
            raw = fault.body if isinstance(fault.body, str) else json.dumps(fault.body)
            await send_bytes(send, fault.status, raw.encode(), headers)
            return
        message = fault.message or _DEFAULT_MESSAGES.get(fault.status, f"fake error {fault.status}")
        if openai:
            payload = openai_wire.error_body(fault.status, message, error_type=fault.error_type)
        else:
            payload = anthropic_wire.error_body(
                fault.status,
                message,
                error_type=fault.error_type,
                request_id=self._ids.next("req_fake_"),
            )
        await send_bytes(send, fault.status, json.dumps(payload).encode(), headers)


@dataclass(frozen=True, slots=True)
class _Canned:
    created: int
    stream: bool
    data: bytes
    reply_id: str


_CANNED_MAX = 256
FAKE_MODELS_CREATED = datetime(2025, 1, 1, tzinfo=UTC)
"""The creation time the fake reports for every model (fixed, so replies are stable)."""
_ID = re.compile(rb'"id":"((?:msg_fake_|chatcmpl-fake)[0-9]+)"')


@functools.lru_cache(maxsize=64)
def _text_tokens(text: str) -> int:
    return estimate_text_tokens(text)


_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "An unexpected error has occurred internal to the fake upstream.",
    529: "Overloaded",
}
