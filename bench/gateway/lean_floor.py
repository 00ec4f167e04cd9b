"""Diagnostic: a bare pass-through proxy on Orchestra's own transport.

The same job as ``floor.py`` (no auth, no routing, no accounting) but served the way
``orchestra gateway`` serves (uvicorn with :mod:`orchestra.server.protocol`) and calling
the upstream with the gateway's own client (:mod:`orchestra.gateway.http_client`). Orchestra
against this floor shows what its features cost on its own transport; against ``floor.py``
(a conventional uvicorn + aiohttp proxy) what the whole gateway costs compared with the
proxy one would write without it. Run by ``run.py`` as
``python -m bench.gateway.lean_floor PORT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from orchestra.gateway.http_client import HTTPClient

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8089")
Message = MutableMapping[str, Any]
_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


class LeanFloor:
    """ASGI pass-through over the gateway's upstream client."""

    def __init__(self) -> None:
        self.client = HTTPClient()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await self.client.aclose()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        response = await self.client.post(
            UPSTREAM + scope["path"],
            b"".join(chunks),
            _HEADERS,
            connect_timeout=10,
            read_timeout=60,
        )
        try:
            body = await response.read()
        finally:
            response.release()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    from orchestra.server.protocol import uvicorn_options

    uvicorn.run(LeanFloor(), port=int(sys.argv[1]), log_level="warning", **uvicorn_options())


if __name__ == "__main__":
    main()
