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


class PassThrough:
    """ASGI pass-through: reads the body, :meth:`forward` s it to ``$BENCH_UPSTREAM`` and
    answers with the upstream's status and body (with its length). The client is made by
    the subclass inside the server's event loop."""

    async def forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    async def close(self) -> None:
        """Release the client at shutdown."""

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
                    await self.close()
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
        status, body = await self.forward(scope["path"], b"".join(chunks))
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


class Floor(PassThrough):
    """The pass-through over aiohttp's client."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
        async with self.session.post(
            UPSTREAM + path,
            data=body,
            headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
        ) as response:
            return response.status, await response.read()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


app = Floor()
