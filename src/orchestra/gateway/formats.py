"""The two client wire formats: how each one names things and shapes its errors."""

from __future__ import annotations

import json
import math
from enum import StrEnum

from orchestra.gateway.errors import GatewayHTTPError


class WireFormat(StrEnum):
    """The format a client speaks (and, for upstreams, the provider ``kind``)."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"


_OPENAI_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "overloaded_error": "server_error",
    "timeout_error": "server_error",
    "api_error": "server_error",
}


def error_body(fmt: WireFormat, error: GatewayHTTPError) -> bytes:
    """The JSON error body ``fmt``'s SDK expects (Anthropic or OpenAI shape)."""
    message = error.message if not error.hint else f"{error.message} ({error.hint})"
    if fmt is WireFormat.ANTHROPIC:
        payload: dict[str, object] = {
            "type": "error",
            "error": {"type": error.error_type, "message": message},
        }
    else:
        payload = {
            "error": {
                "message": message,
                "type": _OPENAI_TYPES.get(error.error_type, "server_error"),
                "param": None,
                "code": error.code,
            }
        }
    return json.dumps(payload).encode()


def error_headers(error: GatewayHTTPError) -> list[tuple[bytes, bytes]]:
    """Headers of an error response: JSON, plus ``retry-after`` (whole seconds, rounded up)."""
    headers = [(b"content-type", b"application/json")]
    if error.retry_after_s is not None:
        seconds = max(0, math.ceil(error.retry_after_s))
        headers.append((b"retry-after", str(seconds).encode()))
    return headers


def sse_error_event(fmt: WireFormat, error: GatewayHTTPError) -> bytes:
    """An error delivered inside a stream that has already begun."""
    body = error_body(fmt, error).decode()
    if fmt is WireFormat.ANTHROPIC:
        return f"event: error\ndata: {body}\n\n".encode()
    return f"data: {body}\n\n".encode()
