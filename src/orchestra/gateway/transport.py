"""What the gateway needs of an upstream HTTP client, and the errors such a client raises.

:class:`UpstreamTransport` sends one POST and hands back an :class:`UpstreamResponse` once
its headers arrived. :class:`~orchestra.gateway.http_client.HTTPClient` implements it (with
:class:`~orchestra.gateway.http_connection.HTTPResponse`), and
:mod:`orchestra.gateway.proxy_client` does through aiohttp when a proxy variable applies.
Tests inject their own through :attr:`orchestra.gateway.GatewayDeps.http_client`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from orchestra.errors import GatewayError


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
    def status(self) -> int:
        """The HTTP status code."""
        ...

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
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        ...

    async def aclose(self) -> None:
        """Close every connection (a response still being read fails)."""
        ...


__all__ = [
    "UpstreamConnectionError",
    "UpstreamResponse",
    "UpstreamTimeoutError",
    "UpstreamTransport",
]
