"""A lean HTTP/1.1 client for the gateway's upstream calls.

The gateway only ever POSTs a ready body with a few headers to a handful of known upstreams
and reads a JSON or SSE answer. A general-purpose client (aiohttp) spent about a third of the
gateway's CPU per request on machinery this does not need, so :class:`HTTPClient` does just
that: an :class:`asyncio.Protocol` fed to ``httptools``' response parser, keep-alive
connections pooled per (scheme, host, port) under a global cap, TLS through
:mod:`ssl`, flow control on unread bodies, and the timeouts the gateway relies on.

When an ``HTTP(S)_PROXY`` variable applies to an upstream,
:mod:`orchestra.gateway.proxy_client` routes it through aiohttp instead, behind the same
:class:`UpstreamResponse` interface.

A request is never re-sent: a connection that fails after the request was written raises
:class:`UpstreamConnectionError`, and the caller's retry policy decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Protocol

import httptools

from orchestra.errors import GatewayError

DEFAULT_LIMIT = 1000
"""Most connections open at once, over all upstreams (aiohttp's default ``limit``)."""
IDLE_EXPIRY_S = 15.0
"""An idle pooled connection older than this is closed rather than reused."""
MAX_UNREAD_BYTES = 1 << 20
"""Socket reading pauses while a response holds more unread body than this."""
_DIRECT_BODY_BYTES = 64 * 1024
"""Bodies up to this size go out in one write with the request head."""


class UpstreamConnectionError(GatewayError, OSError):
    """The upstream could not be reached, or broke the exchange: refused, reset, closed
    before or in the middle of its answer, or sent something that is not HTTP/1.1.

    Also an :class:`OSError`, so code that handles sockets handles it; the gateway answers
    the client with :class:`~orchestra.gateway.errors.UpstreamFailed` or ``UpstreamTimeout``.
    """


class UpstreamTimeoutError(UpstreamConnectionError, TimeoutError):
    """The upstream did not connect, or did not send a byte, within the allowed time."""


class UpstreamResponse(Protocol):
    """An upstream answer whose headers arrived; its body is read with :meth:`read` or by
    iterating over chunks as they arrive. End with :meth:`release` or :meth:`close`."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers, looked up case-insensitively."""
        ...

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive (whatever is buffered at each step)."""
        ...

    def at_eof(self) -> bool:
        """Whether the whole body was received and handed out."""
        ...

    def unread(self) -> bytes:
        """Body bytes received but not handed out (after a failure mid-body)."""
        ...

    def release(self) -> None:
        """Done: the connection is reused when the body was read to its end, else closed."""
        ...

    def close(self) -> None:
        """Drop the connection (abandons an answer still streaming)."""
        ...


class UpstreamTransport(Protocol):
    """Sends one POST and returns the response once its headers arrived."""

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        headers_within: float | None = None,
    ) -> UpstreamResponse:
        """``read_timeout`` bounds the wait for the headers and each gap between body
        chunks; ``headers_within`` bounds connecting, sending and the wait for the headers
        together. Raises :class:`UpstreamConnectionError` (or :class:`UpstreamTimeoutError`)."""
        ...

    @property
    def closed(self) -> bool: ...

    async def aclose(self) -> None: ...


class ResponseHeaders(Mapping[str, str]):
    """Response headers by lower-cased name (a repeated header's values joined by ``, ``)."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> str:
        try:
            return self._items[name]
        except KeyError:
            return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ResponseHeaders({self._items!r})"


_Key = tuple[str, str, int]


class _Endpoint:
    """What a URL's scheme://host:port resolves to, computed once per base URL."""

    __slots__ = ("head", "host", "key", "path", "port", "tls")

    def __init__(self, base: str) -> None:
        parts = urllib.parse.urlsplit(base)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamConnectionError(f"not an http(s) URL: {base!r}")
        self.tls = scheme == "https"
        self.host = parts.hostname
        default = 443 if self.tls else 80
        self.port = parts.port or default
        self.key: _Key = (scheme, self.host, self.port)
        self.path = parts.path or "/"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != default:
            host = f"{host}:{self.port}"
        self.head = (
            f"host: {host}\r\naccept-encoding: identity\r\nuser-agent: orchestra-gateway\r\n"
        )


def _encode_headers(headers: Mapping[str, str]) -> str:
    lines = []
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


class HTTPClient:
    """Pooled keep-alive HTTP/1.1 client for POSTs to known upstreams.

    Not thread-safe; bound to the event loop it is first used in.
    """

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        idle_expiry_s: float = IDLE_EXPIRY_S,
        max_unread_bytes: int = MAX_UNREAD_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limit = limit
        self.idle_expiry_s = idle_expiry_s
        self.max_unread_bytes = max_unread_bytes
        self._ssl = ssl_context
        self._endpoints: dict[str, _Endpoint] = {}
        self._idle: dict[_Key, deque[_Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live: set[_Connection] = set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def open_connections(self) -> int:
        """Connections open or being opened."""
        return self._open

    def idle_connections(self) -> int:
        """Connections waiting in the pool."""
        return sum(len(q) for q in self._idle.values())

    def _endpoint(self, url: str) -> tuple[_Endpoint, str]:
        base, sep, query = url.partition("?")
        endpoint = self._endpoints.get(base)
        if endpoint is None:
            if len(self._endpoints) > 1024:
                self._endpoints.clear()
            endpoint = self._endpoints[base] = _Endpoint(base)
        if not sep:
            return endpoint, endpoint.path
        if " " in query or "\r" in query or "\n" in query:
            raise ValueError("the query string holds a space or a line break")
        return endpoint, endpoint.path + sep + query

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        headers_within: float | None = None,
    ) -> HTTPResponse:
        if self._closed:
            raise UpstreamConnectionError("the upstream client is closed")
        endpoint, target = self._endpoint(url)
        head = (
            f"POST {target} HTTP/1.1\r\n{endpoint.head}{_encode_headers(headers)}"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        # One deadline for the whole, checked where each wait starts: no timer of its own
        # (a pooled connection is handed out without waiting).
        deadline = None if headers_within is None else self._now() + headers_within
        conn = await self._acquire(endpoint, _within(connect_timeout, deadline, self._now))
        response = HTTPResponse(conn, read_timeout, self.max_unread_bytes)
        conn.response = response
        try:
            transport = conn.transport
            if len(body) <= _DIRECT_BODY_BYTES:
                transport.write(head + body)
            else:
                transport.write(head)
                transport.write(body)
            await response._wait_headers(deadline)
        except BaseException:
            conn.close()
            raise
        return response

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _acquire(self, endpoint: _Endpoint, connect_timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        idle = self._idle.get(endpoint.key)
        if idle:
            expired = loop.time() - self.idle_expiry_s
            while idle:
                conn = idle.pop()
                # A connection the server closed while it sat in the pool is never handed out.
                if conn.usable() and conn.idle_since > expired:
                    return conn
                conn.close()
        try:
            async with asyncio.timeout(connect_timeout):
                while self._open >= self.limit:
                    if not self._close_one_idle():
                        waiter = loop.create_future()
                        self._waiters.append(waiter)
                        try:
                            await waiter
                        finally:
                            if waiter in self._waiters:
                                self._waiters.remove(waiter)
                    idle = self._idle.get(endpoint.key)
                    while idle:
                        conn = idle.pop()
                        if conn.usable():
                            return conn
                        conn.close()
                self._open += 1
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self),
                        endpoint.host,
                        endpoint.port,
                        ssl=self._ssl_context() if endpoint.tls else None,
                        server_hostname=endpoint.host if endpoint.tls else None,
                    )
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"could not connect to {endpoint.host}:{endpoint.port} in time"
            ) from exc
        except OSError as exc:
            if isinstance(exc, UpstreamConnectionError):
                raise
            raise UpstreamConnectionError(
                f"could not connect to {endpoint.host}:{endpoint.port}: {exc}"
            ) from exc
        conn.key = endpoint.key
        self._live.add(conn)
        return conn

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Used from another event loop than before (tests run one loop per test):
        pooled connections of the old loop cannot serve this one; drop them."""
        if self._loop is not None:
            for queue in self._idle.values():
                for conn in queue:
                    conn.counted = False
                    if not conn.lost:
                        with contextlib.suppress(RuntimeError):  # the old loop is closed
                            conn.transport.abort()
            self._idle.clear()
            self._live.clear()
            self._open = 0
            self._waiters.clear()
            if self._sweep is not None:
                self._sweep.cancel()
                self._sweep = None
        self._loop = loop

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _close_one_idle(self) -> bool:
        """Make room under the cap by closing the longest-idle connection, if any."""
        oldest: deque[_Connection] | None = None
        for queue in self._idle.values():
            if queue and (oldest is None or queue[0].idle_since < oldest[0].idle_since):
                oldest = queue
        if oldest is None:
            return False
        oldest.popleft().close()
        return True

    def _put(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        conn.response = None
        conn.idle_since = loop.time()
        self._idle.setdefault(conn.key, deque()).append(conn)
        if self._sweep is None:
            self._sweep = loop.call_later(self.idle_expiry_s, self._expire_idle)
        self._wake()

    def _expire_idle(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        expired = loop.time() - self.idle_expiry_s
        remaining = False
        for queue in self._idle.values():
            while queue and queue[0].idle_since <= expired:
                queue.popleft().close()
            remaining = remaining or bool(queue)
        if remaining and not self._closed:
            self._sweep = loop.call_later(self.idle_expiry_s, self._expire_idle)

    def _forget(self, conn: _Connection) -> None:
        """``conn`` closed: it leaves the pool and frees its place under the cap."""
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._live.discard(conn)
            queue = self._idle.get(conn.key)
            if queue is not None and conn in queue:
                queue.remove(conn)
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close every connection, pooled or busy (a response still being read fails)."""
        self._closed = True
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        closing = list(self._live)
        for conn in closing:
            conn.abort()
        # A transport reports its end on a later turn of the loop (TLS ones after a few):
        # let them, so none outlives the loop, but never wait long on a stuck one.
        for _ in range(100):
            if all(conn.lost for conn in closing):
                break
            await asyncio.sleep(0)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one response at a time."""

    def __init__(self, client: HTTPClient) -> None:
        self.client = client
        self.key: _Key = ("", "", 0)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.response: HTTPResponse | None = None
        self.idle_since = 0.0
        self.lost = False
        self.reusable = True
        self.counted = True

    def usable(self) -> bool:
        return not self.lost and self.reusable and not self.transport.is_closing()

    def abort(self) -> None:
        """Drop the connection at once (no TLS close_notify exchange)."""
        self.reusable = False
        if not self.lost:
            self.transport.abort()
        self.client._forget(self)

    def close(self) -> None:
        self.reusable = False
        if not self.lost:
            self.transport.close()
        # connection_lost follows from the loop; leave the cap now so a waiter can connect.
        self.client._forget(self)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response._complete:
            # Bytes nobody asked for: the connection cannot be trusted any more.
            self.reusable = False
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            response._fail(UpstreamConnectionError("the upstream switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            response._fail(UpstreamConnectionError(f"the upstream's answer is not HTTP: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.client._forget(self)
        response = self.response
        if response is not None:
            response._connection_lost(exc)

    # httptools callbacks

    def on_message_begin(self) -> None:
        response = self.response
        if response is not None and response._complete:
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        if response is not None:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            raw = response._raw_headers
            raw[key] = f"{raw[key]}, {text}" if key in raw else text

    def on_headers_complete(self) -> None:
        response = self.response
        if response is not None:
            response._headers_complete(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        response = self.response
        if response is not None:
            response._feed(body)

    def on_message_complete(self) -> None:
        response = self.response
        # Without headers, this ended a 1xx interim answer: the real one follows.
        if response is not None and response._has_headers and not response._complete:
            response._keep_alive = self.parser.should_keep_alive()
            response._finish()


class HTTPResponse:
    """An upstream answer read off one pooled connection (see :class:`UpstreamResponse`)."""

    def __init__(self, conn: _Connection, read_timeout: float | None, max_unread: int) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._max_unread = max_unread
        self.status = 0
        self._raw_headers: dict[str, str] = {}
        self.headers = ResponseHeaders(self._raw_headers)
        self._has_headers = False
        self._buffer: list[bytes] = []
        self._size = 0
        self._complete = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._keep_alive = False
        self._until_close = False
        self._decoder: Any = None
        self._done = False

    # fed by the connection

    def _headers_complete(self, status: int) -> None:
        if 100 <= status < 200:
            # An interim answer (e.g. 103 Early Hints): the real one follows.
            self._raw_headers.clear()
            return
        self.status = status
        self._has_headers = True
        raw = self._raw_headers
        encoding = raw.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = _Deflate()
        self._until_close = (
            "content-length" not in raw
            and "chunked" not in raw.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        self._wake()

    def _feed(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self._fail(UpstreamConnectionError(f"the upstream's compressed body is bad: {exc}"))
                self._conn.close()
                return
            if not data:
                return
        self._buffer.append(data)
        self._size += len(data)
        if self._size > self._max_unread and not self._paused and not self._conn.lost:
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._buffer.append(tail)
                self._size += len(tail)
        self._complete = True
        self._wake()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._complete:
            return
        if self._has_headers and self._until_close and exc is None:
            self._finish()  # a body delimited by the end of the connection
            return
        what = "while answering" if self._has_headers else "before answering"
        error = UpstreamConnectionError(f"the upstream closed the connection {what}")
        if exc is not None:
            error.__cause__ = exc
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, deadline: float | None = None) -> None:
        """Until data, the end or an error arrives; at most the read timeout, and never
        past ``deadline`` (loop time)."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None
        if self._read_timeout is not None:
            until = loop.time() + self._read_timeout
            timer = loop.call_at(
                until if deadline is None else min(until, deadline), _expire, waiter
            )
        elif deadline is not None:
            timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _wait_headers(self, deadline: float | None = None) -> None:
        while not self._has_headers:
            if self._error is not None:
                raise self._error
            await self._wait(deadline)

    # public interface

    async def read(self) -> bytes:
        chunks: list[bytes] = []
        try:
            async for chunk in self:
                chunks.append(chunk)
        except BaseException:
            # Nothing was handed out: everything received stays available to unread().
            self._buffer[:0] = chunks
            raise
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._error is not None:
                raise self._error
            if self._buffer:
                return self._take()
            if self._complete:
                raise StopAsyncIteration
            await self._wait()

    def _take(self) -> bytes:
        buffer = self._buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            if not self._conn.lost:
                self._conn.transport.resume_reading()
        return data

    def at_eof(self) -> bool:
        return self._complete and not self._buffer

    def unread(self) -> bytes:
        return b"".join(self._buffer)

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        conn = self._conn
        if (
            self._complete
            and self._error is None
            and not self._buffer
            and self._keep_alive
            and conn.response is self
            and conn.usable()
            and not conn.client.closed
        ):
            if self._paused:
                conn.transport.resume_reading()
            conn.client._put(conn)
        else:
            conn.close()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._conn.close()


def _within(
    timeout: float | None, deadline: float | None, now: Callable[[], float]
) -> float | None:
    """``timeout``, shortened to what is left before ``deadline`` (loop time)."""
    if deadline is None:
        return timeout
    left = max(0.0, deadline - now())
    return left if timeout is None else min(timeout, left)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeoutError("the upstream sent nothing in time"))


class _Deflate:
    """``content-encoding: deflate`` is zlib-wrapped by the standard, raw in practice at
    times: try the former, fall back to the latter on the first chunk."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._inner.decompress(data)
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data)

    def flush(self) -> bytes:
        return self._inner.flush()


__all__ = [
    "HTTPClient",
    "HTTPResponse",
    "ResponseHeaders",
    "UpstreamConnectionError",
    "UpstreamResponse",
    "UpstreamTimeoutError",
    "UpstreamTransport",
]
