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

This leans on uvicorn internals (``RequestResponseCycle``'s attributes), so
:func:`protocol_class` checks they are there and otherwise returns uvicorn's stock protocol:
an unexpected uvicorn release costs one system call per response, never correctness.
"""

from __future__ import annotations

import logging
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


_stock = _stock_module()
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
        """uvicorn's httptools protocol whose cycles write whole responses in one go."""

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if type(cycle) is _stock.RequestResponseCycle:
                # The task is not running yet: the cycle's own methods resolve on the new
                # class when it starts (same layout, one overridden method).
                cycle.__class__ = OneWriteCycle
            super()._start_asgi_task(cycle, app)


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
