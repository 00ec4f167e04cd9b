"""The fake upstream: a real HTTP server speaking Anthropic Messages and OpenAI Chat Completions.

It is a raw ASGI application (no framework: the gateway benchmark needs the upstream to be
cheap) served by uvicorn with httptools, either on a background thread (:meth:`FakeUpstream.start`)
or in the foreground (:meth:`FakeUpstream.serve_forever`, used by
``python -m orchestra.testing.upstream``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypedDict, Unpack

from orchestra.testing.asgi import (
    BackgroundServer,
    Receive,
    Scope,
    Send,
    send_bytes,
    send_json,
    wait_disconnect,
)
from orchestra.testing.capacity import HostCapacity, SlotHost
from orchestra.testing.render import IdSource
from orchestra.testing.replies import ReplyWriter
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
    capacity: HostCapacity | None
    """Serve generations as a host of known capacity (slots, tokens/s, a bounded queue;
    see :mod:`orchestra.testing.capacity`) instead of from the script."""


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
        capacity = options.get("capacity")
        self.slot_host: SlotHost | None = None if capacity is None else SlotHost(capacity)
        """The slots and queue when started with ``capacity``."""
        self.responder: Responder | None = None
        """Full control: called for every request; return a step, or ``None`` for the
        script/default."""
        self._replies = ReplyWriter(
            options.get("ids") or IdSource(), options.get("clock", time.time)
        )
        self._lock = threading.Lock()
        self._queue: deque[tuple[Step, Match | None]] = deque()
        self._requests: deque[RecordedRequest] = deque(maxlen=options.get("max_recorded"))
        self._in_flight = 0
        self._answered = 0
        self._stop: asyncio.Event | None = None
        self._runner: BackgroundServer | None = None
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

    @property
    def in_flight(self) -> int:
        """Routed requests received and not yet answered (or abandoned) right now."""
        with self._lock:
            return self._in_flight

    @property
    def answered(self) -> int:
        """Routed requests whose handling has ended (answered, or the client went away)."""
        with self._lock:
            return self._answered

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
            await self._replies.error(send, path.endswith("/chat/completions"), too_large)
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
            await self._replies.error(send, openai, Fault(401, message="invalid x-api-key"))
            return
        if path in ("/v1/models", "/models") and method == "GET":
            await self._replies.models(send, self.models)
            return
        if path == "/metrics" and method == "GET" and self.slot_host is not None:
            text = self.slot_host.metrics().encode()
            await send_bytes(send, 200, text, [(b"content-type", b"text/plain; version=0.0.4")])
            return
        if method != "POST" or path not in _ROUTED_PATHS:
            await self._replies.error(
                send, openai, Fault(404, message=f"no route for {method} {path}")
            )
            return
        if bad_json or not isinstance(parsed, dict):
            await self._replies.error(
                send, openai, Fault(400, message="the request body is not a JSON object")
            )
            return
        with self._lock:
            self._in_flight += 1
        try:
            await self._generate(send, receive, request, parsed, path, openai)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._answered += 1

    async def _generate(
        self,
        send: Send,
        receive: Receive,
        request: RecordedRequest,
        parsed: dict[str, Any],
        path: str,
        openai: bool,
    ) -> None:
        """Answer a routed POST with the responder's step, the next scripted one, or the
        default reply."""
        generation = path in _GENERATION_PATHS
        if generation and self.slot_host is not None:
            await self._generate_on_slot(self.slot_host, send, receive, request, parsed, openai)
            return
        step: Step | None = None
        responder = self.responder
        if responder is not None:
            step = responder(request)
            if step is not None:
                _check_step(step)
        if step is None:
            step = self._take(request, generation)
        if step is None:
            if generation and await self._replies.send_canned(send, path, request.body):
                return
            step = Reply(text=self.default_text)
            if generation:
                await self._answer(send, receive, request, parsed, step, openai, canned=path)
                return
        if not generation and isinstance(step, Reply):
            await self._replies.count_tokens(send, parsed, step)
            return
        await self._answer(send, receive, request, parsed, step, openai)

    async def _generate_on_slot(
        self,
        host: SlotHost,
        send: Send,
        receive: Receive,
        request: RecordedRequest,
        parsed: dict[str, Any],
        openai: bool,
    ) -> None:
        """Answer as the host of known capacity: wait for a slot, or 503 past the queue."""
        if not await host.acquire():
            await self._replies.error(send, openai, host.refusal())
            return
        try:
            await self._answer(send, receive, request, parsed, host.step(parsed, openai), openai)
        finally:
            host.release()

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
        await self._replies.answer(send, request, body, step, openai, self.default_text, canned)

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


_ROUTED_PATHS = frozenset(
    {"/v1/messages", "/v1/chat/completions", "/chat/completions", "/v1/messages/count_tokens"}
)
_GENERATION_PATHS = frozenset({"/v1/messages", "/v1/chat/completions", "/chat/completions"})

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
