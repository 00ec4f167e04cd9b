"""Errors raised while reading or translating provider wire formats."""

from __future__ import annotations

from orchestra.errors import ProviderError


class WireFormatError(ProviderError):
    """A request, response or stream does not follow the wire format it claims to.

    ``status`` and ``error_type`` say how a gateway should answer the client: a request the
    client sent is its fault (400, ``invalid_request_error``); a reply the upstream sent is
    the upstream's (502, ``api_error``).
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int = 400,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_type = error_type


class TranslationError(WireFormatError):
    """A message cannot be expressed in the other wire format (or is malformed)."""


def upstream_fault(message: str, *, hint: str | None = None) -> WireFormatError:
    """A :class:`WireFormatError` blaming the upstream's reply (HTTP 502)."""
    return WireFormatError(
        message,
        hint=hint or "the upstream sent a malformed reply; check the provider's base_url and kind",
        status=502,
        error_type="api_error",
    )
