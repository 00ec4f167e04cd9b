"""A lean HTTP/1.1 client for the gateway's upstream calls.

The gateway only ever POSTs a ready body with a few headers to a handful of known upstreams
and reads a JSON or SSE answer. A general-purpose client (aiohttp) spent about a third of the
gateway's CPU per request on machinery this does not need, so :class:`HTTPClient` does just
that: keep-alive connections (:mod:`orchestra.gateway.http_connection`, an
:class:`asyncio.Protocol` fed to ``httptools``' response parser) pooled per
(scheme, host, port) under a global cap, TLS through :mod:`ssl`, flow control on unread
bodies, and the timeouts the gateway relies on.

When an ``HTTP(S)_PROXY`` variable applies to an upstream,
:mod:`orchestra.gateway.proxy_client` routes it through aiohttp instead, behind the same
:class:`~orchestra.gateway.transport.UpstreamResponse` interface.

A request is never re-sent: a connection that fails after the request was written raises
:class:`~orchestra.gateway.transport.UpstreamConnectionError`, and the caller's retry policy
decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping

from orchestra.gateway.http_connection import HTTPConnection, HTTPResponse, PoolKey
from orchestra.gateway.transport import UpstreamConnectionError, UpstreamTimeoutError

DEFAULT_LIMIT = 1000
"""Most connections open at once, over all upstreams (aiohttp's default ``limit``)."""
IDLE_EXPIRY_S = 15.0
"""An idle pooled connection older than this is closed rather than reused."""
MAX_UNREAD_BYTES = 1 << 20
"""Socket reading pauses while a response holds more unread body than this."""
_DIRECT_BODY_BYTES = 64 * 1024


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
        self.key: PoolKey = (scheme, self.host, self.port)
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
        self._idle: dict[PoolKey, deque[HTTPConnection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live: set[HTTPConnection] = set()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
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
        """POST ``body`` to ``url`` on a pooled connection (or a new one) and return the
        response once its headers arrived; see :meth:`UpstreamTransport.post
        <orchestra.gateway.transport.UpstreamTransport.post>` for the timeouts."""
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

    async def _acquire(self, endpoint: _Endpoint, connect_timeout: float | None) -> HTTPConnection:
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
                        lambda: HTTPConnection(self),
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
        oldest: deque[HTTPConnection] | None = None
        for queue in self._idle.values():
            if queue and (oldest is None or queue[0].idle_since < oldest[0].idle_since):
                oldest = queue
        if oldest is None:
            return False
        oldest.popleft().close()
        return True

    def _put(self, conn: HTTPConnection) -> None:
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

    def _forget(self, conn: HTTPConnection) -> None:
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


def _within(
    timeout: float | None, deadline: float | None, now: Callable[[], float]
) -> float | None:
    """``timeout``, shortened to what is left before ``deadline`` (loop time)."""
    if deadline is None:
        return timeout
    left = max(0.0, deadline - now())
    return left if timeout is None else min(timeout, left)


__all__ = ["DEFAULT_LIMIT", "IDLE_EXPIRY_S", "MAX_UNREAD_BYTES", "HTTPClient"]
