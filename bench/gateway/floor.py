"""The floor: a bare pass-through proxy on the same stack as Orchestra (uvicorn, aiohttp).

No auth, no routing, no accounting: it forwards the body to ``$BENCH_UPSTREAM`` and returns
the answer with its length (as any competent proxy would: no chunked framing for a body it
already holds). Whatever Orchestra costs above this is the price of its features and of its
own transport choices.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8089")
Message = MutableMapping[str, Any]


class Floor:
    """ASGI pass-through; the session is created inside the server's event loop."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.shutdown" and self.session is not None:
                    await self.session.close()
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
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
        async with self.session.post(
            UPSTREAM + scope["path"],
            data=b"".join(chunks),
            headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
        ) as response:
            body = await response.read()
            status = response.status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


app = Floor()
