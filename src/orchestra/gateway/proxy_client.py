"""Upstreams behind an HTTP(S) proxy: aiohttp, seen through the upstream client's interface.

The gateway's own client (:mod:`orchestra.gateway.http_client`) speaks to upstreams
directly. When an ``HTTP_PROXY``/``HTTPS_PROXY`` variable applies to an upstream and
``NO_PROXY`` does not exempt it, :class:`ProxyAwareClient` sends that upstream's calls through
aiohttp with ``trust_env`` (which also honours proxy credentials), with its errors mapped to
:class:`~orchestra.gateway.http_client.UpstreamConnectionError`.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp

from orchestra.gateway.http_client import DEFAULT_LIMIT, HTTPClient
from orchestra.gateway.transport import (
    UpstreamConnectionError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
)


class AiohttpResponse:
    """An aiohttp response seen through :class:`UpstreamResponse`."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc) from exc

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc) from exc

    def at_eof(self) -> bool:
        return self._response.content.at_eof()

    def unread(self) -> bytes:
        # Once an aiohttp stream has failed, its readers raise before returning what is
        # still buffered: take it from the buffer.
        buffer = getattr(self._response.content, "_buffer", None)
        try:
            return b"".join(buffer) if buffer else b""
        except TypeError:
            return b""

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


def _mapped(exc: BaseException) -> UpstreamConnectionError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(f"the upstream sent nothing in time ({type(exc).__name__})")
    return UpstreamConnectionError(f"upstream connection failed: {type(exc).__name__}: {exc}")


class ProxiedClient:
    """aiohttp with ``trust_env``: reaches upstreams through ``HTTP(S)_PROXY``."""

    def __init__(self, connector: Callable[[], aiohttp.BaseConnector] | None = None) -> None:
        self._connector = connector
        self._session: aiohttp.ClientSession | None = None

    @property
    def closed(self) -> bool:
        return self._session is not None and self._session.closed

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = (
                self._connector()
                if self._connector is not None
                else aiohttp.TCPConnector(limit=DEFAULT_LIMIT, ttl_dns_cache=300)
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=True,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
            )
        return self._session

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        headers_within: float | None = None,
    ) -> AiohttpResponse:
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        try:
            async with asyncio.timeout(headers_within):
                response = await self._open().post(
                    url, data=body, headers=dict(headers), timeout=timeout
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc) from exc
        return AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class ProxyAwareClient:
    """:class:`HTTPClient` for upstreams reached directly, :class:`ProxiedClient` for those
    a proxy variable applies to."""

    def __init__(
        self, direct: HTTPClient, proxied: ProxiedClient, environ: Mapping[str, str]
    ) -> None:
        self.direct = direct
        self.proxied = proxied
        self._proxies = {k: v for k, v in _proxy_variables(environ).items() if k != "no"}
        self._no_proxy = _proxy_variables(environ).get("no", "")
        self._route: dict[str, bool] = {}

    @property
    def closed(self) -> bool:
        return self.direct.closed

    def uses_proxy(self, url: str) -> bool:
        """Whether ``url`` goes through a proxy (cached per scheme://host:port)."""
        scheme, _, rest = url.partition("://")
        origin = scheme.lower() + "://" + rest.split("/", 1)[0].split("?", 1)[0]
        found = self._route.get(origin)
        if found is None:
            host = urllib.parse.urlsplit(origin).hostname or ""
            found = scheme.lower() in self._proxies and not _bypassed(host, self._no_proxy)
            if len(self._route) > 1024:
                self._route.clear()
            self._route[origin] = found
        return found

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
        client: UpstreamTransport = self.proxied if self.uses_proxy(url) else self.direct
        return await client.post(
            url,
            body,
            headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            headers_within=headers_within,
        )

    async def aclose(self) -> None:
        await self.direct.aclose()
        await self.proxied.aclose()


def _proxy_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``{scheme: proxy URL}`` (and ``"no"``) from ``*_proxy`` variables, lower case first,
    as :func:`urllib.request.getproxies_environment` reads them."""
    found: dict[str, str] = {}
    for name, value in environ.items():
        if value and name[-6:].lower() == "_proxy":
            found[name[:-6].lower()] = value
    for name, value in environ.items():
        if value and name[-6:] == "_proxy":
            found[name[:-6].lower()] = value
    return found


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``: ``*``, the host itself or a parent domain."""
    host = host.lower()
    for entry in no_proxy.replace(" ", "").lower().split(","):
        if not entry:
            continue
        if entry == "*":
            return True
        name = entry.lstrip(".")
        if name.startswith("[") and "]" in name:
            name = name[1 : name.index("]")]
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        if host == name or host.endswith("." + name):
            return True
    return False


def client_from_environment(
    environ: Mapping[str, str],
    *,
    ssl_context: ssl.SSLContext | None = None,
    proxy_connector: Callable[[], aiohttp.BaseConnector] | None = None,
) -> HTTPClient | ProxyAwareClient:
    """The gateway's upstream client: direct, or proxy-aware when a proxy variable is set."""
    direct = HTTPClient(ssl_context=ssl_context)
    proxies = _proxy_variables(environ)
    if any(scheme in proxies for scheme in ("http", "https")):
        return ProxyAwareClient(direct, ProxiedClient(proxy_connector), environ)
    return direct


__all__ = [
    "AiohttpResponse",
    "ProxiedClient",
    "ProxyAwareClient",
    "client_from_environment",
]
