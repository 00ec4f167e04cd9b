"""The ASGI plumbing the gateway's handlers share: message types, the request's headers
and body, and the wait for the client to leave."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from orchestra.gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def read_body(
    receive: Receive, headers: dict[str, str], limit: int, *, require_json: bool = True
) -> bytes:
    """The request body, refused with 415 (not JSON) or 413 (over ``limit`` bytes)."""
    if require_json:
        ctype = headers.get("content-type", "")
        if "json" not in ctype.lower():
            raise UnsupportedMediaType(
                f"content type {ctype or '(none)'!r} is not supported",
                hint="send the body as JSON with Content-Type: application/json",
            )
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body of {declared} bytes exceeds the limit of {limit} bytes",
            hint="send a smaller request (or raise gateway.max_body_bytes)",
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client disconnected while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"request body exceeds the limit of {limit} bytes",
                    hint="send a smaller request (or raise gateway.max_body_bytes)",
                )
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def headers_of(scope: MutableMapping[str, Any]) -> dict[str, str]:
    """Request headers, lower-cased names, latin-1 decoded (the last value wins); decoded
    once per request and kept in the scope."""
    headers: dict[str, str] | None = scope.get("orchestra.headers")
    if headers is None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        scope["orchestra.headers"] = headers
    return headers


async def wait_disconnect(receive: Receive) -> None:
    """Returns once the client disconnected (other messages are dropped)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


__all__ = [
    "Message",
    "Receive",
    "Scope",
    "Send",
    "headers_of",
    "read_body",
    "wait_disconnect",
]
