"""One pooled HTTP/1.1 connection and the response read off it.

An :class:`HTTPConnection` is an :class:`asyncio.Protocol` that feeds ``httptools``'
response parser and carries one :class:`HTTPResponse` at a time: headers, a body decoded
(gzip, deflate) and buffered with flow control, keep-alive, and the read timeouts. Its pool
(:class:`~orchestra.gateway.http_client.HTTPClient`) opens it, hands it out and takes it back.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import httptools

from orchestra.gateway.transport import UpstreamConnectionError, UpstreamTimeoutError

PoolKey = tuple[str, str, int]
"""(scheme, host, port): connections are pooled per key."""


class ConnectionPool(Protocol):
    """What a connection needs of the pool that opened it."""

    @property
    def closed(self) -> bool:
        """Whether the pool was closed (a connection released then is not kept)."""
        ...

    def _put(self, conn: HTTPConnection) -> None:
        """``conn`` answered in full and may serve another request: back to the pool."""
        ...

    def _forget(self, conn: HTTPConnection) -> None:
        """``conn`` closed: it leaves the pool and frees its place under the cap."""
        ...


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


class HTTPConnection(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one response at a time."""

    def __init__(self, client: ConnectionPool) -> None:
        self.client = client
        self.key: PoolKey = ("", "", 0)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.response: HTTPResponse | None = None
        self.idle_since = 0.0
        self.lost = False
        self.reusable = True
        self.counted = True

    def usable(self) -> bool:
        """Open, reusable and not closing: fit to carry another request."""
        return not self.lost and self.reusable and not self.transport.is_closing()

    def abort(self) -> None:
        """Drop the connection at once (no TLS close_notify exchange)."""
        self.reusable = False
        if not self.lost:
            self.transport.abort()
        self.client._forget(self)

    def close(self) -> None:
        """Close the connection (politely: TLS sends its close_notify)."""
        self.reusable = False
        if not self.lost:
            self.transport.close()
        # connection_lost follows from the loop; leave the cap now so a waiter can connect.
        self.client._forget(self)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio: the connection is up."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """asyncio: bytes from the upstream, fed to the parser."""
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
        """asyncio: the upstream half-closed; let the transport close."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio: the connection is gone; the response still open fails or ends."""
        self.lost = True
        self.client._forget(self)
        response = self.response
        if response is not None:
            response._connection_lost(exc)

    # httptools callbacks

    def on_message_begin(self) -> None:
        """httptools: an answer starts (after a complete one: the connection is not reused)."""
        response = self.response
        if response is not None and response._complete:
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools: one header line."""
        response = self.response
        if response is not None:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            raw = response._raw_headers
            raw[key] = f"{raw[key]}, {text}" if key in raw else text

    def on_headers_complete(self) -> None:
        """httptools: the head is complete."""
        response = self.response
        if response is not None:
            response._headers_complete(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        """httptools: a piece of the body."""
        response = self.response
        if response is not None:
            response._feed(body)

    def on_message_complete(self) -> None:
        """httptools: the answer is complete."""
        response = self.response
        # Without headers, this ended a 1xx interim answer: the real one follows.
        if response is not None and response._has_headers and not response._complete:
            response._keep_alive = self.parser.should_keep_alive()
            response._finish()


class HTTPResponse:
    """An upstream answer read off one pooled connection (see :class:`UpstreamResponse`)."""

    def __init__(self, conn: HTTPConnection, read_timeout: float | None, max_unread: int) -> None:
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
        """The whole (remaining) body."""
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
        """Whether the whole body was received and handed out."""
        return self._complete and not self._buffer

    def unread(self) -> bytes:
        """Body bytes received but not handed out (after a failure mid-body)."""
        return b"".join(self._buffer)

    def release(self) -> None:
        """Done: the connection goes back to the pool when the body was read to its end and
        the upstream keeps it alive, else it is closed."""
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
        """Drop the connection (abandons an answer still streaming)."""
        if self._done:
            return
        self._done = True
        self._conn.close()


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


__all__ = ["ConnectionPool", "HTTPConnection", "HTTPResponse", "PoolKey", "ResponseHeaders"]
