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

import sys

from bench.gateway.floor import UPSTREAM, PassThrough
from orchestra.gateway.http_client import HTTPClient

_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


class LeanFloor(PassThrough):
    """The pass-through over the gateway's upstream client."""

    def __init__(self) -> None:
        self.client = HTTPClient()

    async def forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        response = await self.client.post(
            UPSTREAM + path, body, _HEADERS, connect_timeout=10, read_timeout=60
        )
        try:
            return response.status, await response.read()
        finally:
            response.release()

    async def close(self) -> None:
        await self.client.aclose()


def main() -> None:
    import uvicorn

    from orchestra.server.protocol import uvicorn_options

    uvicorn.run(LeanFloor(), port=int(sys.argv[1]), log_level="warning", **uvicorn_options())


if __name__ == "__main__":
    main()
