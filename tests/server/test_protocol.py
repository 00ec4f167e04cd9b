"""The gateway's HTTP protocol: whole answers in one write, everything else as uvicorn does."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.server import ServerState

from orchestra.server.protocol import GatewayHttpProtocol, protocol_class, uvicorn_options


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers by path: /whole, /parts (content-length over two body messages), /stream
    (no length: chunked), /short (declares more than it sends), /close (connection: close)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/whole":
        payload = b'{"echo": ' + str(len(body)).encode() + b"}"
        headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
    elif path == "/parts":
        headers = [(b"content-length", b"10")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"01234", "more_body": True})
        await send({"type": "http.response.body", "body": b"56789"})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/short":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]}
        )
        await send({"type": "http.response.body", "body": b"abc"})
    elif path == "/close":
        headers = [(b"content-length", b"2"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/bad-header":
        headers = [(b"content-length", b"2"), (b"x-evil", b"a\r\nset-cookie: x")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(
        app, port=port, log_level="critical", lifespan="off", **uvicorn_options()
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_installed_uvicorn_gets_the_one_write_protocol() -> None:
    # A uvicorn upgrade that changes the internals falls back to "auto": this test says so.
    assert protocol_class() != "auto"
    assert uvicorn_options()["proxy_headers"] is False


def test_whole_answers_keep_the_connection_alive(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as client:
        for n in range(5):
            response = client.post("/whole", content=b"x" * n)
            assert response.status_code == 200
            assert response.json() == {"echo": n}
            assert response.headers["content-length"] == str(len(response.content))
            assert "server" not in response.headers
            assert "transfer-encoding" not in response.headers


def test_length_delimited_answer_in_several_parts(server_url: str) -> None:
    response = httpx.get(server_url + "/parts")
    assert (response.status_code, response.content) == (201, b"0123456789")


def test_streamed_answer_is_chunked(server_url: str) -> None:
    with httpx.stream("GET", server_url + "/stream") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert b"".join(response.iter_bytes()) == b"abc"


def test_head_sends_headers_only(server_url: str) -> None:
    response = httpx.head(server_url + "/whole")
    assert response.status_code == 200
    assert response.content == b""


def test_connection_close_is_honoured(server_url: str) -> None:
    response = httpx.get(server_url + "/close")
    assert (response.content, response.headers["connection"]) == (b"ok", "close")


def test_short_body_breaks_the_connection_not_the_server(server_url: str) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(server_url + "/short")
    assert httpx.post(server_url + "/whole", content=b"ab").json() == {"echo": 2}


def test_header_injection_is_refused(server_url: str) -> None:
    response = httpx.get(server_url + "/bad-header")
    assert response.status_code == 500
    assert "set-cookie" not in response.headers


def test_pipelined_requests_answer_in_order(server_url: str) -> None:
    port = int(server_url.rsplit(":", 1)[1])
    request = b"POST /whole HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request % (1, b"a") + request % (3, b"abc"))
        data = b""
        sock.settimeout(5)
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}"):
            data += sock.recv(65536)
    first, second = data.index(b'{"echo": 1}'), data.index(b'{"echo": 3}')
    assert first < second


class _Transport(asyncio.Transport):
    """Records writes: what the protocol hands to the socket."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.mark.parametrize(("path", "writes"), [("/whole", 1), ("/stream", 5)])
def test_a_whole_answer_is_one_write(path: str, writes: int) -> None:
    async def scenario() -> list[bytes]:
        config = uvicorn.Config(app, log_level="critical", **uvicorn_options())
        config.load()
        protocol = GatewayHttpProtocol(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.data_received(
            f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode()
        )
        for _ in range(50):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    sent = asyncio.run(scenario())
    assert len(sent) == writes
    assert sent[0].startswith(b"HTTP/1.1 200 OK\r\n")
