"""Serving a raw ASGI application on uvicorn (httptools, uvloop): on a background thread for
tests, or in the foreground for a process of its own; plus the few ASGI helpers the fake needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from orchestra.errors import OrchestraError

__all__ = [
    "JSON_HEADERS",
    "SSE_HEADERS",
    "ASGIApp",
    "BackgroundServer",
    "PromptServer",
    "Receive",
    "Scope",
    "Send",
    "send_bytes",
    "send_json",
    "wait_disconnect",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class PromptServer(uvicorn.Server):
    """A ``uvicorn.Server`` that notices :meth:`exit_soon` at once, instead of at its next
    0.1 s tick: tests stop a server or two each, hundreds of times a run."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        """uvicorn's loop (a tick every 0.1 s), woken early by :meth:`exit_soon`."""
        self._loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.1)

    def exit_soon(self) -> None:
        """Ask the server to shut down (from any thread), waking its loop now."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)


class BackgroundServer:
    """One uvicorn server for ``app`` on a socket bound at construction (port 0: a free one),
    so ``base_url`` is known, and connections queue, before serving starts."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.base_url = f"http://{shown}:{sock.getsockname()[1]}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self._socket = sock
        self._server = PromptServer(
            uvicorn.Config(
                app,
                http="httptools",
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=2,
                backlog=2048,
            )
        )
        self._thread: threading.Thread | None = None

    def run_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM (uvicorn handles the signals)."""
        loop = _new_loop()
        self.loop = loop

        async def main() -> None:
            serving = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
            await _wait_started(self._server, serving)
            if on_ready is not None and self._server.started:
                on_ready()
            await serving

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
            self._socket.close()

    def start_thread(self, name: str = "asgi-server") -> None:
        """Serve on a daemon thread; returns once the server accepts requests."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = _new_loop()
            self.loop = loop

            async def main() -> None:
                serving = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
                await _wait_started(self._server, serving)
                ready.set()
                await serving

            try:
                loop.run_until_complete(main())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure or not self._server.started:
            self.stop()
            raise OrchestraError(
                f"the server did not start on {self.base_url}: {failure[:1]}",
                hint="check that the host is a local address and the port is free",
            )

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the server's loop (from any thread), if it still runs."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.exit_soon()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._socket.close()


async def _wait_started(server: Any, serving: asyncio.Future[None]) -> None:
    # uvicorn exposes readiness only as a flag, so poll it briefly.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.005)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def wait_disconnect(receive: Receive) -> None:
    """Return when the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_bytes(
    send: Send, status: int, data: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """A complete response in two ASGI messages."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def send_json(send: Send, status: int, payload: Any) -> None:
    """A complete JSON response."""
    import json

    await send_bytes(send, status, json.dumps(payload).encode(), list(JSON_HEADERS))
