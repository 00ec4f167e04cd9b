"""Relaying an upstream's event stream to the client.

:class:`StreamRelay` passes the upstream's server-sent events on as they arrive (translated
between Anthropic and OpenAI when the upstream speaks the other format), tracks the usage
they report, journals it at intervals so a crash loses little, and closes the call's
journal with its outcome: ``ok``, ``stream_failed`` (an error event ends the stream) or
``client_disconnected``. :class:`~orchestra.gateway.calls.ModelCallHandler` hands it the
streams it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from orchestra.gateway.accounts import CallRecord, StreamJournal
from orchestra.gateway.asgi import Receive, Send, wait_disconnect
from orchestra.gateway.errors import GatewayHTTPError, UpstreamFailed, UpstreamTimeout
from orchestra.gateway.formats import WireFormat, sse_error_event
from orchestra.gateway.requests import ModelRequest
from orchestra.gateway.service import Gateway
from orchestra.gateway.transport import UpstreamConnectionError
from orchestra.gateway.upstream import OpenedReply
from orchestra.providers import anthropic as anthropic_wire
from orchestra.providers import openai as openai_wire
from orchestra.providers import translate
from orchestra.providers.errors import WireFormatError
from orchestra.providers.sse import SSEEvent, SSEParser, encode_event
from orchestra.providers.usage import Usage


@dataclass
class _StreamState:
    """What a stream has shown so far (shared with the disconnect watcher)."""

    tracker: Any
    events: int = 0
    upstream_error: str | None = None
    finished: bool = False


class StreamRelay:
    """Relays the event streams of one gateway's calls (see the module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def relay(
        self,
        receive: Receive,
        send: Send,
        request: ModelRequest,
        opened: OpenedReply,
        record: CallRecord,
        reservation: Any,
        input_tokens: int,
        t0: float,
        *,
        headers: list[tuple[bytes, bytes]],
        label: str,
    ) -> None:
        """Send ``opened``'s event stream to the client (translated when the upstream speaks
        the other format) under ``headers``, journaling its usage as it goes, until it ends,
        fails (an error event closes it) or the client leaves; then close the journal with
        ``record``'s outcome. ``label`` is the call's metrics label."""
        gw = self.gateway
        deps = gw.deps
        target = opened.target
        try:
            journal: StreamJournal = await gw.blocking(
                gw.accountant.open_stream, record, reservation
            )
        except Exception:
            record.outcome = "upstream_error"
            record.error = "the stream could not be journaled"
            await asyncio.shield(gw.accountant.finish(reservation, record))
            raise
        if target.kind is WireFormat.ANTHROPIC:
            state = _StreamState(anthropic_wire.StreamUsageTracker())
        else:
            state = _StreamState(openai_wire.StreamUsageTracker())
        translator: Any = None
        if target.kind is not request.fmt:
            if request.fmt is WireFormat.ANTHROPIC:
                translator = translate.OpenAIToAnthropicStream(
                    model=request.model, input_tokens=input_tokens
                )
            else:
                options = request.body.get("stream_options")
                translator = translate.AnthropicToOpenAIStream(
                    model=request.model,
                    include_usage=isinstance(options, dict)
                    and options.get("include_usage") is True,
                )
        headers.append((b"cache-control", b"no-cache"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        pump = asyncio.ensure_future(
            self._pump(send, opened, state, translator, journal, record, input_tokens, t0)
        )
        watcher = asyncio.ensure_future(wait_disconnect(receive))
        disconnected = False
        try:
            done, _ = await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if pump not in done:
                disconnected = True
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            else:
                pump.result()
        finally:
            watcher.cancel()
            if not pump.done():
                pump.cancel()
            tracker = state.tracker
            if target.kind is WireFormat.OPENAI:
                usage = tracker.usage_so_far(input_tokens)
            else:
                usage = tracker.usage_so_far()
            complete = tracker.finished if target.kind is WireFormat.ANTHROPIC else tracker.done
            record.usage = usage
            record.cost_usd = gw.cost_after_call(target.model, usage, record.reserved_usd)
            if disconnected:
                record.outcome = "client_disconnected"
            elif state.upstream_error is not None or not complete:
                record.outcome = "stream_failed"
                record.error = state.upstream_error or "the upstream stream ended early"
            else:
                record.outcome = "ok"
            record.status = 200
            elapsed = deps.clock() - t0
            record.latency_ms = round(elapsed * 1000, 3)
            await asyncio.shield(journal.close(record))
            gw.metrics.request(request.fmt.value, 200, label, elapsed)
            gw.metrics.usage(target.model, usage, record.cost_usd)
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(
        self,
        send: Send,
        opened: OpenedReply,
        state: _StreamState,
        translator: Any,
        journal: StreamJournal,
        record: CallRecord,
        input_tokens: int,
        t0: float,
    ) -> None:
        gw = self.gateway
        clock = gw.deps.clock
        interval = gw.snapshot.config.gateway.stream_journal_interval_s
        target = opened.target
        parser = SSEParser()
        tracker = state.tracker
        last_journal = clock()
        pending: asyncio.Future[None] | None = None
        client_fmt = (
            WireFormat.OPENAI if target.kind is WireFormat.ANTHROPIC else WireFormat.ANTHROPIC
        )
        if translator is None:
            client_fmt = target.kind
        try:
            async for chunk in opened.response:
                events = parser.feed(chunk)
                for event in events:
                    # An event we cannot read still passes through untouched.
                    with contextlib.suppress(WireFormatError):
                        tracker.feed(event)
                if record.ttft_ms is None:
                    record.ttft_ms = round((clock() - t0) * 1000, 3)
                out = chunk if translator is None else _encode(translator, events)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                now = clock()
                if now - last_journal >= interval and (pending is None or pending.done()):
                    last_journal = now
                    usage = _usage_so_far(tracker, target.kind, input_tokens)
                    cost = gw.cost_after_call(target.model, usage, record.reserved_usd)
                    pending = asyncio.ensure_future(gw.blocking(journal.progress, usage, cost))
            tail = parser.finish()
            for event in tail:
                with contextlib.suppress(WireFormatError):
                    tracker.feed(event)
            if translator is not None:
                out = _encode(translator, tail) + _encode_events(translator.finish(), client_fmt)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except (UpstreamConnectionError, TimeoutError, WireFormatError) as exc:
            await _end_with_error(send, opened, state, parser, translator, client_fmt, exc)
        finally:
            if pending is not None and not pending.done():
                await asyncio.shield(pending)


async def _end_with_error(
    send: Send,
    opened: OpenedReply,
    state: _StreamState,
    parser: SSEParser,
    translator: Any,
    client_fmt: WireFormat,
    exc: Exception,
) -> None:
    """The upstream's stream broke off: pass on what arrived with the failure, then an
    error event in the client's format."""
    tracker = state.tracker
    timeout = isinstance(exc, TimeoutError)
    state.upstream_error = f"upstream stream failed: {_failure_name(exc)}"
    leftover = opened.response.unread()
    if leftover:
        # Events that arrived with the failure: account for them and pass them on.
        events = parser.feed(leftover)
        for event in events:
            with contextlib.suppress(WireFormatError):
                tracker.feed(event)
        out = leftover if translator is None else _encode(translator, events)
        if out:
            await send({"type": "http.response.body", "body": out, "more_body": True})
    error: GatewayHTTPError = (
        UpstreamTimeout("the upstream stopped sending mid-stream")
        if timeout
        else UpstreamFailed("the upstream broke off the stream")
    )
    await send(
        {
            "type": "http.response.body",
            "body": sse_error_event(client_fmt, error),
            "more_body": True,
        }
    )


def _usage_so_far(tracker: Any, kind: WireFormat, input_tokens: int) -> Usage:
    if kind is WireFormat.OPENAI:
        usage: Usage = tracker.usage_so_far(input_tokens)
        return usage
    result: Usage = tracker.usage_so_far()
    return result


def _encode(translator: Any, events: list[SSEEvent]) -> bytes:
    out: list[SSEEvent] = []
    for event in events:
        out.extend(translator.feed(event))
    return b"".join(encode_event(e.event, e.data) for e in out)


def _encode_events(events: list[SSEEvent], fmt: WireFormat) -> bytes:
    return b"".join(encode_event(e.event, e.data) for e in events)


def _failure_name(exc: BaseException) -> str:
    """The name of what broke a stream: the underlying error when the client wrapped one
    (``ConnectionResetError`` says more than ``UpstreamConnectionError``)."""
    if isinstance(exc, UpstreamConnectionError) and exc.__cause__ is not None:
        return type(exc.__cause__).__name__
    return type(exc).__name__


__all__ = ["StreamRelay"]
