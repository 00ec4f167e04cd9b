"""The HTTP/1.1 protocol ``orchestra gateway`` and ``orchestra serve`` run under uvicorn.

uvicorn's httptools protocol writes a response's status line and headers to the socket as
soon as the application sends ``http.response.start``, and the body with a second write
when ``http.response.body`` follows: two ``send`` system calls (and, on loopback, two
segments for the client to read) for every whole JSON answer. The gateway's answers are
nearly all whole bodies with a known length, so :class:`GatewayHttpProtocol` holds the head
of such a response until its body arrives and writes both at once. Everything else (keep-
alive, pipelining, flow control, timeouts, streamed responses, shutdown) is uvicorn's own
code: the protocol subclasses uvicorn's and changes only how a response with a
``content-length`` is written.

The protocol also bounds what a client may hold before the application sees a request
(:class:`ConnectionLimits`): the size of the request head, the number of headers, the time
to send the head and the body (slowloris), and the connections one client address may keep
open. The deadlines are checked by one sweep per second over the open connections rather
than a timer per request, so the hot path only notes the time at each phase.

This leans on uvicorn internals (``RequestResponseCycle``'s attributes), so
:func:`protocol_class` checks they are there and otherwise returns uvicorn's stock protocol:
an unexpected uvicorn release costs one system call per response and the limits above
(uvicorn's h11 fallback bounds the head at 16 KiB by itself), never correctness.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("orchestra.server")

_CYCLE_ATTRIBUTES = (
    "response_started",
    "response_complete",
    "waiting_for_100_continue",
    "expected_content_length",
    "chunked_encoding",
    "keep_alive",
    "default_headers",
    "flow",
    "transport",
    "disconnected",
    "message_event",
    "on_response",
    "scope",
)


def _stock_module() -> Any:
    """uvicorn's httptools protocol module, or ``None`` when it lacks what is relied on."""
    try:
        from uvicorn.protocols.http import httptools_impl as stock
    except ImportError:  # httptools missing: uvicorn falls back to h11 by itself
        return None
    names = ("HttpToolsProtocol", "RequestResponseCycle", "STATUS_LINE", "HEADER_RE")
    if not all(hasattr(stock, name) for name in (*names, "HEADER_VALUE_RE")):
        return None
    assigned = stock.RequestResponseCycle.__init__.__code__.co_names
    if not all(name in assigned for name in _CYCLE_ATTRIBUTES):
        return None
    if not hasattr(stock.HttpToolsProtocol, "_start_asgi_task"):
        return None
    return stock


_PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may hold before (and while) its request is read."""

    max_head_bytes: int = 64 * 1024
    """Request line and headers together; larger gets 431 and the connection closed."""
    max_headers: int = 100
    """Header lines in one request; more gets 431."""
    head_timeout_s: float = 10.0
    """From the connection (or a request's first byte) to the end of its headers; then 408."""
    body_timeout_s: float = 60.0
    """Added to ``head_timeout_s`` for the whole request, body included (from its first
    byte); then 408, or the connection is closed if the answer has begun."""
    max_connections_per_client: int = 256
    """Open connections from one client address per worker process; more are answered 503
    and closed at once. Behind a reverse proxy every client shares the proxy's address:
    raise it there, or let the proxy limit its clients."""


LIMITS = ConnectionLimits()
"""The limits every gateway server process applies."""
_SWEEP_S = 1.0


def _refusal(status_line: bytes, error_type: str, message: str) -> bytes:
    """A complete response that closes the connection, its body an error both SDKs read
    (the Anthropic shape; OpenAI's clients read ``error.message`` from it too)."""
    body = json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()
    return b"".join(
        (
            status_line,
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )


@dataclass
class _ServerGuard:
    """Per-server state of the limits: connections per client, and whether the deadline
    sweep is scheduled (it runs only while connections are open)."""

    clients: dict[str, int]
    sweeping: bool = False


_stock = _stock_module()
if _stock is not None and not all(hasattr(_stock.HttpToolsProtocol, m) for m in _PROTOCOL_METHODS):
    _stock = None
PROTOCOL = "orchestra.server.protocol:GatewayHttpProtocol"
"""Import path of the protocol (a string: worker processes import it themselves)."""

if _stock is not None:
    _stock_send = _stock.RequestResponseCycle.send
    _Cycle: Any = _stock.RequestResponseCycle
    _Protocol: Any = _stock.HttpToolsProtocol

    class OneWriteCycle(_Cycle):  # type: ignore[misc]  # uvicorn is untyped here
        """A request/response cycle that writes a length-delimited response in one go."""

        _held: bytes | None = None
        response_started: bool

        async def send(self, message: Any) -> None:
            held = self._held
            if held is not None:
                await self._send_held(held, message)
                return
            if (
                self.response_started
                or message["type"] != "http.response.start"
                or self.disconnected
                or self.flow.write_paused
            ):
                await _stock_send(self, message)
                return
            head = self._head(message)
            if head is None:  # no content-length (a stream) or framing headers: stock path
                await _stock_send(self, message)
                return
            self.response_started = True
            self.waiting_for_100_continue = False
            self._held = head

        def _head(self, message: Any) -> bytes | None:
            """Status line and headers, or ``None`` when the stock path must write them."""
            content = [_stock.STATUS_LINE[message["status"]]]
            length: int | None = None
            for name, value in (*self.default_headers, *message.get("headers", ())):
                if _stock.HEADER_RE.search(name):
                    raise RuntimeError("Invalid HTTP header name.")
                if _stock.HEADER_VALUE_RE.search(value):
                    raise RuntimeError("Invalid HTTP header value.")
                name = name.lower()
                if name == b"content-length":
                    length = int(value.decode())
                elif name in (b"transfer-encoding", b"connection"):
                    return None
                content.extend((name, b": ", value, b"\r\n"))
            if length is None:
                return None
            if not self.keep_alive:
                content.append(b"connection: close\r\n")
            content.append(b"\r\n")
            self.expected_content_length = length
            self.chunked_encoding = False
            return b"".join(content)

        async def _send_held(self, head: bytes, message: Any) -> None:
            if message["type"] != "http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
                )
            self._held = None
            if self.disconnected:
                return
            body: bytes = message.get("body", b"")
            if self.scope["method"] == "HEAD":
                body = b""
                self.expected_content_length = 0
            elif len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            else:
                self.expected_content_length -= len(body)
            self.transport.write(head + body)
            if message.get("more_body", False):
                return
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    class GatewayHttpProtocol(_Protocol):  # type: ignore[misc]
        """uvicorn's httptools protocol whose cycles write whole responses in one go, and
        which enforces :data:`LIMITS` on every connection."""

        limits: ConnectionLimits = LIMITS
        _since = 0.0
        """When the current request's first byte (or the connection) came."""
        _head_of: Any = None
        """The cycle that was current when this request began: while it still is, the
        request's head is incomplete (uvicorn makes a new cycle once the head is read).
        Phases are told apart this way, not by more overridden parser callbacks: each one
        costs a Python call per request."""
        _head_bytes = 0
        _peer: str | None = None

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if type(cycle) is _stock.RequestResponseCycle:
                # The task is not running yet: the cycle's own methods resolve on the new
                # class when it starts (same layout, one overridden method).
                cycle.__class__ = OneWriteCycle
            super()._start_asgi_task(cycle, app)

        def _guard(self) -> _ServerGuard:
            guard: _ServerGuard | None = getattr(self.server_state, "orchestra_guard", None)
            if guard is None:
                guard = _ServerGuard({})
                self.server_state.orchestra_guard = guard
            return guard

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            guard = self._guard()
            peer = self.client[0] if self.client else None
            if peer is not None:
                open_now = guard.clients.get(peer, 0)
                if open_now >= self.limits.max_connections_per_client:
                    self._refuse(503, "overloaded_error", "too many connections from this client")
                    return
                guard.clients[peer] = open_now + 1
                self._peer = peer
            self._since = self.loop.time()
            if not guard.sweeping:
                guard.sweeping = True
                self.loop.call_later(_SWEEP_S, _sweep, self.server_state, guard, self.loop)

        def connection_lost(self, exc: Exception | None) -> None:
            peer = self._peer
            if peer is not None:
                self._peer = None
                clients = self._guard().clients
                left = clients.get(peer, 1) - 1
                if left > 0:
                    clients[peer] = left
                else:
                    clients.pop(peer, None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            in_head = self.cycle is self._head_of
            if in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self.cycle is self._head_of:
                # The parser keeps a partial header line itself: the head is bounded here,
                # by what arrived while it was incomplete (within one read of the limit).
                if self._head_bytes > self.limits.max_head_bytes:
                    self._refuse(431, "request_too_large", "the request headers are too large")
            elif in_head:
                self._head_bytes = 0
                if len(self.headers) > self.limits.max_headers:
                    self._refuse(431, "request_too_large", "the request has too many headers")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._since = self.loop.time()
            self._head_of = self.cycle

        def _refuse(self, status: int, error_type: str, message: str) -> None:
            """Answer ``status`` and close, unless the application's answer has begun."""
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                # The application is still reading or answering: it sees a disconnect, and
                # whatever it sends from now on is dropped.
                cycle.disconnected = True
                cycle.message_event.set()
                if cycle.response_started:
                    self.transport.close()
                    return
            if not self.transport.is_closing():
                self.transport.write(_refusal(_stock.STATUS_LINE[status], error_type, message))
                self.transport.close()

        def _check_deadline(self, now: float) -> None:
            if self.transport.is_closing():
                return
            cycle = self.cycle
            waited = now - self._since
            limits = self.limits
            if cycle is self._head_of:
                if waited > limits.head_timeout_s:
                    self._refuse(408, "timeout_error", "the request headers were not sent in time")
            elif cycle.more_body and waited > limits.head_timeout_s + limits.body_timeout_s:
                if cycle.response_complete:
                    # Answered already (e.g. 401 before the body was read): just hang up.
                    self.transport.close()
                else:
                    self._refuse(408, "timeout_error", "the request body was not sent in time")

    def _sweep(server_state: Any, guard: _ServerGuard, loop: Any) -> None:
        """Close connections past a deadline; reschedule while any connection is open."""
        connections = server_state.connections
        if not connections:
            guard.sweeping = False
            return
        now = loop.time()
        for connection in list(connections):
            if isinstance(connection, GatewayHttpProtocol):
                connection._check_deadline(now)
        loop.call_later(_SWEEP_S, _sweep, server_state, guard, loop)


def protocol_class() -> str:
    """What to pass as uvicorn's ``http`` setting: the one-write protocol, or ``"auto"``
    (uvicorn's own choice) when this uvicorn's internals are not the expected ones."""
    if _stock is None:
        log.info("uvicorn's httptools protocol is not the expected one; using it unchanged")
        return "auto"
    return PROTOCOL


def uvicorn_options() -> dict[str, Any]:
    """How the gateway's uvicorn is set up (``orchestra gateway``/``serve`` and the benchmark).

    Nothing reads the client's address, so ``X-Forwarded-*`` need not be rewritten into it
    (a middleware on every request); the server does not advertise itself; no access log
    (the ledger records every model call).
    """
    return {
        "http": protocol_class(),
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
    }
