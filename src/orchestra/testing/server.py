"""The fake upstream: a real HTTP server speaking Anthropic Messages and OpenAI Chat Completions.

It is a raw ASGI application (no framework: the gateway benchmark needs the upstream to be
cheap) served by uvicorn with httptools, either on a background thread (:meth:`FakeUpstream.start`)
or in the foreground (:meth:`FakeUpstream.serve_forever`, used by
``python -m orchestra.testing.upstream``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypedDict, Unpack

from orchestra.providers import anthropic as anthropic_wire
from orchestra.providers import openai as openai_wire
from orchestra.providers.sse import encode_event
from orchestra.providers.tokens import estimate_input_tokens, estimate_text_tokens
from orchestra.providers.usage import Usage
from orchestra.testing.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    BackgroundServer,
    Receive,
    Scope,
    Send,
    send_bytes,
    send_json,
    wait_disconnect,
)
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
    Match,
    RecordedRequest,
    Reply,
    ScriptError,
    Step,
    StreamError,
    Timeout,
    parse_script,
)

__all__ = ["DEFAULT_MODELS", "DEFAULT_TEXT", "FakeUpstream", "Responder", "UpstreamOptions"]

Responder = Callable[[RecordedRequest], Step | None]

DEFAULT_TEXT = "Hello from the Orchestra fake upstream."
DEFAULT_MODELS: tuple[str, ...] = (
    "claude-opus-4-5",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "gpt-4o-mini",
    "llama3.1:8b",
)
MAX_BODY_BYTES = 32 * 1024 * 1024


class UpstreamOptions(TypedDict, total=False):
    """Options of :class:`FakeUpstream`, its :meth:`~FakeUpstream.start` and
    :meth:`~FakeUpstream.serve_forever`; every one may be left out."""

    models: Iterable[str]
    """Model ids ``/v1/models`` lists (default :data:`DEFAULT_MODELS`)."""
    api_key: str | None
    """When set, requests without it (``x-api-key`` or ``Authorization: Bearer``) get a 401."""
    max_recorded: int | None
    """Keep only the latest N requests (benchmarks); default: all."""
    default_text: str
    """Text of the reply to unscripted requests (default :data:`DEFAULT_TEXT`)."""
    clock: Callable[[], float]
    """Seconds since the epoch, for OpenAI's ``created`` (default :func:`time.time`)."""
    ids: IdSource | None
    """Source of reply ids (default: a fresh :class:`IdSource`)."""


class FakeUpstream:
    """A scriptable Anthropic/OpenAI upstream for tests, benchmarks and the offline demo.

    Thread-safe: scripts may be queued and requests read from any thread while the server
    runs on its own. With no script it answers every request with a deterministic default
    reply whose usage is computed from the request size (see ``docs/testing.md``).
    """

    def __init__(self, **options: Unpack[UpstreamOptions]) -> None:
        """A fake that is not serving yet (see :meth:`start`); options as in
        :class:`UpstreamOptions`."""
        self.models = tuple(options.get("models", DEFAULT_MODELS))
        self.api_key = options.get("api_key")
        self.default_text = options.get("default_text", DEFAULT_TEXT)
        self.responder: Responder | None = None
        """Full control: called for every request; return a step, or ``None`` for the
        script/default."""
        self._clock = options.get("clock", time.time)
        self._ids = options.get("ids") or IdSource()
        self._lock = threading.Lock()
        self._queue: deque[tuple[Step, Match | None]] = deque()
        self._requests: deque[RecordedRequest] = deque(maxlen=options.get("max_recorded"))
        self._stop: asyncio.Event | None = None
        self._runner: BackgroundServer | None = None
        # Default replies are a pure function of the request body (and the second, for
        # OpenAI's "created"), so benchmarks hitting the fake with one body reuse the encoded
        # reply and only swap in a fresh id.
        self._canned: dict[tuple[str, bytes], _Canned] = {}
        self.base_url = ""
        """``http://127.0.0.1:PORT`` once started."""

    # --- scripting --------------------------------------------------------------------------

    def script(self, *steps: Step, match: Match | None = None) -> None:
        """Queue steps (FIFO). With ``match``, they answer only matching requests; requests
        that no queued step matches get the default reply."""
        for step in steps:
            _check_step(step)
        with self._lock:
            self._queue.extend((step, match) for step in steps)

    def script_entries(self, entries: Iterable[tuple[Step, Match | None]]) -> None:
        """Queue ``(step, match)`` pairs, e.g. from :func:`load_script`."""
        pairs = list(entries)
        for step, _ in pairs:
            _check_step(step)
        with self._lock:
            self._queue.extend(pairs)

    def clear(self) -> None:
        """Drop queued steps, recorded requests and the responder."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self.responder = None

    @property
    def pending(self) -> int:
        """Queued steps not yet used."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def _take(self, request: RecordedRequest, generation: bool) -> Step | None:
        if not self._queue:  # len() of a deque is atomic; skip the lock on the hot path
            return None
        with self._lock:
            for position, (step, match) in enumerate(self._queue):
                if _matches(match, request, generation):
                    del self._queue[position]
                    return step
        return None

    # --- running ----------------------------------------------------------------------------

    @classmethod
    def start(
        cls, host: str = "127.0.0.1", port: int = 0, **options: Unpack[UpstreamOptions]
    ) -> FakeUpstream:
        """Start a server on a background thread (port 0: a free port); use as a context
        manager (``with`` or ``async with``) or call :meth:`stop`. Options as for the
        constructor."""
        upstream, runner = cls._bound(host, port, options)
        runner.start_thread("fake-upstream")
        return upstream

    @classmethod
    def serve_forever(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_ready: Callable[[FakeUpstream], None] | None = None,
        **options: Unpack[UpstreamOptions],
    ) -> None:
        """Serve in the foreground until SIGINT/SIGTERM (for running as its own process)."""
        upstream, runner = cls._bound(host, port, options)
        runner.run_forever(None if on_ready is None else lambda: on_ready(upstream))

    @classmethod
    def _bound(
        cls, host: str, port: int, options: UpstreamOptions
    ) -> tuple[FakeUpstream, BackgroundServer]:
        """A fake with its server bound to ``host:port`` (so ``base_url`` is known), not
        yet serving."""
        upstream = cls(**options)
        runner = BackgroundServer(upstream, host, port)
        upstream._runner = runner
        upstream.base_url = runner.base_url
        return upstream, runner

    def stop(self) -> None:
        """Stop the background server; requests left hanging by :class:`Timeout` end."""
        runner = self._runner
        if runner is None:
            return
        stop = self._stop
        if stop is not None:
            runner.call_soon(stop.set)
        runner.stop()
        self._runner = None

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Joining the server thread takes a moment; do it off the caller's event loop.
        await asyncio.to_thread(self.stop)

    # --- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point (also usable in-process, e.g. with ``httpx.ASGITransport``)."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        received = await _read_body(receive)
        if received is None:
            return  # the client went away
        body, size = received
        if size > MAX_BODY_BYTES:
            too_large = Fault(413, message=f"the body exceeds {MAX_BODY_BYTES} bytes")
            await self._error(send, path.endswith("/chat/completions"), too_large)
            return
        if path.startswith("/_fake/"):
            await self._control(method, path, body, send)
            return
        request, bad_json = self._record(scope, body)
        headers = request.headers
        parsed = request.json
        openai = path.endswith("/chat/completions") or (
            path.endswith("/models")
            and "anthropic-version" not in headers
            and "x-api-key" not in headers
        )
        if self.api_key is not None and not self._authorised(headers):
            await self._error(send, openai, Fault(401, message="invalid x-api-key"))
            return
        if path in ("/v1/models", "/models") and method == "GET":
            await self._models(send)
            return
        if method != "POST" or path not in _ROUTED_PATHS:
            await self._error(send, openai, Fault(404, message=f"no route for {method} {path}"))
            return
        if bad_json or not isinstance(parsed, dict):
            await self._error(
                send, openai, Fault(400, message="the request body is not a JSON object")
            )
            return
        generation = path in _GENERATION_PATHS
        step: Step | None = None
        responder = self.responder
        if responder is not None:
            step = responder(request)
            if step is not None:
                _check_step(step)
        if step is None:
            step = self._take(request, generation)
        if step is None:
            if generation and await self._send_canned(send, path, request.body):
                return
            step = Reply(text=self.default_text)
            if generation:
                await self._answer(send, receive, request, parsed, step, openai, canned=path)
                return
        if not generation and isinstance(step, Reply):
            await self._count_tokens(send, parsed, step)
            return
        await self._answer(send, receive, request, parsed, step, openai)

    def _record(self, scope: Scope, body: bytes) -> tuple[RecordedRequest, bool]:
        """The request as recorded (headers merged, body decoded), and whether the body was
        present but not JSON."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        parsed: Any = None
        bad_json = False
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                bad_json = True
        query = scope.get("query_string", b"").decode("latin-1")
        request = RecordedRequest(scope["method"], scope["path"], query, headers, parsed, body)
        with self._lock:
            self._requests.append(request)
        return request, bad_json

    def _authorised(self, headers: dict[str, str]) -> bool:
        given = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        return given == self.api_key

    async def _answer(
        self,
        send: Send,
        receive: Receive,
        request: RecordedRequest,
        body: dict[str, Any],
        step: Step,
        openai: bool,
        canned: str | None = None,
    ) -> None:
        if isinstance(step, Timeout):
            await self._hang(receive)
            return
        if isinstance(step, Fault):
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            await self._error(send, openai, step)
            return
        if isinstance(step, StreamError) and not request.stream:
            await self._error(send, openai, Fault(step.status, message=step.message))
            return
        drop_after: int | None = None
        error_after: int | None = None
        if isinstance(step, DropMidStream | StreamError):
            reply = step.reply or Reply(text=self.default_text)
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
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()
        ]
        created = int(self._clock())
        if request.stream:
            if openai:
                options = body.get("stream_options")
                include = isinstance(options, dict) and options.get("include_usage") is True
                events = openai_chunks(reply, model, usage, self._ids, created, include)
            else:
                events = anthropic_events(reply, model, usage, self._ids)
            if isinstance(step, StreamError) and error_after is not None:
                events = [*events[:error_after], self._stream_error(step, openai)]
            start = {
                "type": "http.response.start",
                "status": 200,
                "headers": SSE_HEADERS + headers,
            }
            if drop_after is None and not reply.chunk_delay_s:
                # Nothing to pace: one write for the whole stream (still chunked, still SSE).
                data = b"".join(events)
                if canned is not None:
                    self._remember(canned, request.body, created, True, data, events[0])
                await send(start)
                await send({"type": "http.response.body", "body": data})
                return
            await send(start)
            for position, event in enumerate(events):
                if drop_after is not None and position >= drop_after:
                    return  # returning mid-body makes the server close the connection
                if position and reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if openai:
            payload = openai_completion(reply, model, usage, self._ids, created)
        else:
            payload = anthropic_message(reply, model, usage, self._ids)
        data = dumps(payload).encode()
        if drop_after is not None:
            length = [(b"content-length", str(len(data)).encode())]
            await send(
                {"type": "http.response.start", "status": 200, "headers": JSON_HEADERS + length}
            )
            await send(
                {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
            )
            return
        if canned is not None:
            self._remember(canned, request.body, created, False, data, data)
        await send_bytes(send, 200, data, JSON_HEADERS + headers)

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

    async def _send_canned(self, send: Send, path: str, body: bytes) -> bool:
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
        output = _text_tokens(reply.text) + estimate_text_tokens(reply.thinking or "")
        for call in reply.tool_calls:
            output += estimate_text_tokens(call.name) + estimate_text_tokens(json.dumps(call.input))
        return Usage(input_tokens=estimate_input_tokens(body), output_tokens=max(1, output))

    async def _count_tokens(self, send: Send, body: dict[str, Any], step: Reply) -> None:
        tokens = estimate_input_tokens(body, "anthropic")
        if step.usage is not None:
            tokens = step.usage.input_tokens
        await send_json(send, 200, {"input_tokens": tokens})

    async def _models(self, send: Send) -> None:
        # One body both SDKs accept: OpenAI's list fields plus Anthropic's pagination fields.
        data = [
            {
                "id": name,
                "object": "model",
                "type": "model",
                "created": 1_700_000_000,
                "created_at": "2025-01-01T00:00:00Z",
                "display_name": name,
                "owned_by": "orchestra-fake",
            }
            for name in self.models
        ]
        await send_json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    async def _error(self, send: Send, openai: bool, fault: Fault) -> None:
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

    async def _hang(self, receive: Receive) -> None:
        stop = self._stop_event()
        disconnect = asyncio.ensure_future(wait_disconnect(receive))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({disconnect, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnect.cancel()
            stopping.cancel()

    def _stop_event(self) -> asyncio.Event:
        if self._stop is None:
            self._stop = asyncio.Event()
        return self._stop

    async def _control(self, method: str, path: str, body: bytes, send: Send) -> None:
        """``/_fake/*``: script and inspect a fake running as its own process."""
        if path == "/_fake/script" and method == "POST":
            try:
                pairs = parse_script(json.loads(body or b"[]"))
            except (ValueError, ScriptError) as exc:
                await send_json(send, 400, {"error": str(exc)})
                return
            self.script_entries(pairs)
            await send_json(send, 200, {"queued": len(pairs)})
        elif path == "/_fake/requests" and method == "GET":
            recorded = [
                {
                    "method": r.method,
                    "path": r.path,
                    "query": r.query,
                    "headers": _redacted(r.headers),
                    "json": r.json,
                }
                for r in self.requests
            ]
            await send_json(send, 200, recorded)
        elif path == "/_fake/reset" and method == "POST":
            self.clear()
            await send_json(send, 200, {"reset": True})
        elif path == "/_fake/health":
            await send_json(send, 200, {"ok": True, "pending": self.pending})
        else:
            await send_json(send, 404, {"error": f"no control route {method} {path}"})


@dataclass(frozen=True, slots=True)
class _Canned:
    created: int
    stream: bool
    data: bytes
    reply_id: str


_CANNED_MAX = 256
_ID = re.compile(rb'"id":"((?:msg_fake_|chatcmpl-fake)[0-9]+)"')


@functools.lru_cache(maxsize=64)
def _text_tokens(text: str) -> int:
    return estimate_text_tokens(text)


_ROUTED_PATHS = frozenset(
    {"/v1/messages", "/v1/chat/completions", "/chat/completions", "/v1/messages/count_tokens"}
)
_GENERATION_PATHS = frozenset({"/v1/messages", "/v1/chat/completions", "/chat/completions"})
_COUNT_PATHS = frozenset({"/v1/messages/count_tokens"})
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


_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})


def _redacted(headers: dict[str, str]) -> dict[str, str]:
    """Headers fit to leave the process: credentials replaced by a fingerprint that tests can
    compare (``sha256:`` and the first 12 hex digits of the value's digest)."""
    return {
        name: (
            f"redacted sha256:{hashlib.sha256(value.encode()).hexdigest()[:12]}"
            if name in _CREDENTIAL_HEADERS
            else value
        )
        for name, value in headers.items()
    }


async def _read_body(receive: Receive) -> tuple[bytes, int] | None:
    """The request body and its full size, or ``None`` if the client disconnected. Past the
    size limit the rest is read and dropped, so an oversized body is never held in memory."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), size


def _check_step(step: object) -> None:
    if not isinstance(step, Reply | Fault | Timeout | DropMidStream | StreamError):
        raise ScriptError(
            f"not a fake upstream step: {step!r}",
            hint="use Reply, Fault, Timeout, DropMidStream or StreamError",
        )


def _matches(match: Match | None, request: RecordedRequest, generation: bool) -> bool:
    if match is None:
        # Unrouted steps answer model calls only, so a count_tokens or models call made by a
        # client does not eat a step scripted for the next generation.
        return generation
    if match.path is not None and match.path != request.path:
        return False
    if match.path is None and not generation:
        return False
    if match.model is not None and match.model != request.model:
        return False
    if match.stream is not None and match.stream != request.stream:
        return False
    return match.system_contains is None or match.system_contains in request.system_text
