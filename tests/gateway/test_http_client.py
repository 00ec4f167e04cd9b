"""The gateway's upstream HTTP client against real servers on loopback: the fake upstream,
and small raw asyncio servers for the edge cases (keep-alive, closes, stalls, gzip, TLS,
a forward proxy)."""

from __future__ import annotations

import asyncio
import datetime
import gc
import gzip
import ipaddress
import json
import os
import ssl
import warnings
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from orchestra.gateway import GatewayDeps
from orchestra.gateway.http_client import HTTPClient
from orchestra.gateway.proxy_client import ProxyAwareClient, client_from_environment
from orchestra.gateway.transport import UpstreamConnectionError, UpstreamTimeoutError
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import ServerThread, gateway_config, make_app, memory_accountant

pytestmark = pytest.mark.anyio

MESSAGE = json.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
).encode()
ANTHROPIC = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
TIMEOUTS = {"connect_timeout": 5.0, "read_timeout": 5.0}


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Plain asyncio and uvloop (the production loop): their transports differ."""
    return ("asyncio", {"use_uvloop": request.param == "uvloop"})


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 that counts connections and records request heads."""

    port: int = 0
    accepted: int = 0
    heads: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/v1/messages", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


async def read_request(reader: asyncio.StreamReader, server: RawServer) -> bool:
    """One request off ``reader`` (head and content-length body); False at EOF."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length)
    server.heads.append(head)
    server.bodies.append(body)
    server.received.set()
    return True


def answer(
    body: bytes, *, status: str = "200 OK", ctype: str = "application/json", extra: str = ""
) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
    return (head + extra + "\r\n").encode() + body


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@asynccontextmanager
async def raw_server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    state = RawServer()
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer, state)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # the server is shutting down (asyncio logs a handler that ends cancelled)
        finally:
            writer.close()
            state.closed.set()
            tasks.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def keep_alive_json(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    """Answers every request on the connection with a small JSON body."""
    while await read_request(reader, server):
        writer.write(answer(b'{"n":%d}' % len(server.heads)))
        await writer.drain()


@asynccontextmanager
async def client_of(**options: object) -> AsyncIterator[HTTPClient]:
    client = HTTPClient(**options)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.aclose()


async def settle(condition: Callable[[], bool]) -> None:
    """Let the loop deliver what the peer already did (a close) until ``condition`` holds:
    yields to the loop a bounded number of times, never waits on a clock."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


# --- keep-alive and the pool ---------------------------------------------------------------


async def test_sequential_calls_share_one_tcp_connection() -> None:
    async with raw_server(keep_alive_json) as server, client_of() as client:
        for n in range(1, 6):
            response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
            assert response.status == 200
            assert await response.read() == b'{"n":%d}' % n
            assert response.at_eof()
            response.release()
        assert server.accepted == 1
        assert client.open_connections == 1 and client.idle_connections() == 1
        head = server.heads[0].lower()
        assert head.startswith("post /v1/messages http/1.1\r\n")
        assert f"host: 127.0.0.1:{server.port}\r\n" in head
        assert "content-length: 2\r\n" in head and "accept-encoding: identity\r\n" in head


async def test_fake_upstream_json_and_stream_over_one_connection() -> None:
    with FakeUpstream.start() as upstream:
        async with client_of() as client:
            url = upstream.base_url + "/v1/messages"
            response = await client.post(url, MESSAGE, ANTHROPIC, **TIMEOUTS)
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("application/json")
            assert json.loads(await response.read())["type"] == "message"
            response.release()
            streamed = json.dumps({**json.loads(MESSAGE), "stream": True}).encode()
            response = await client.post(url + "?beta=true", streamed, ANTHROPIC, **TIMEOUTS)
            assert "text/event-stream" in response.headers.get("content-type", "")
            chunks = [c async for c in response]
            assert b"event: message_stop" in b"".join(chunks)
            response.release()
            assert client.open_connections == 1 and client.idle_connections() == 1
            assert upstream.requests[-1].query == "beta=true"


async def test_pool_cap_makes_the_next_call_wait_for_a_connection() -> None:
    go = asyncio.Event()

    async def slow(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while await read_request(reader, server):
            await go.wait()
            writer.write(answer(b"{}"))
            await writer.drain()

    async with raw_server(slow) as server, client_of(limit=2) as client:

        async def call() -> bytes:
            response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
            data = await response.read()
            response.release()
            return data

        calls = [asyncio.ensure_future(call()) for _ in range(3)]
        await settle(lambda: len(server.heads) == 2)
        assert client.open_connections == 2 and not any(c.done() for c in calls)
        go.set()
        assert await asyncio.gather(*calls) == [b"{}"] * 3
        assert server.accepted == 2 and len(server.heads) == 3


async def test_waiting_for_a_free_connection_counts_as_connecting() -> None:
    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        await reader.read()

    async with raw_server(silent) as server, client_of(limit=1) as client:
        busy = asyncio.ensure_future(
            client.post(server.url(), b"{}", ANTHROPIC, connect_timeout=5, read_timeout=None)
        )
        await server.received.wait()
        with pytest.raises(UpstreamTimeoutError):
            await client.post(server.url(), b"{}", ANTHROPIC, connect_timeout=0.05, read_timeout=5)
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
        assert client.open_connections == 0


async def test_idle_connection_closed_by_the_server_is_not_reused() -> None:
    async def one_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(answer(b"{}"))  # says keep-alive, then closes anyway
        await writer.drain()

    async with raw_server(one_then_close) as server, client_of() as client:
        first = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        assert await first.read() == b"{}"
        first.release()
        await server.closed.wait()
        await settle(lambda: client.idle_connections() == 0)
        second = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        assert await second.read() == b"{}"
        second.release()
        assert server.accepted == 2


async def test_connection_close_answer_is_not_pooled() -> None:
    async def closing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(answer(b"{}", extra="connection: close\r\n"))
        await writer.drain()
        await reader.read()

    async with raw_server(closing) as server, client_of() as client:
        response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        assert await response.read() == b"{}"
        response.release()
        assert client.idle_connections() == 0 and client.open_connections == 0


async def test_idle_connections_expire() -> None:
    async with raw_server(keep_alive_json) as server, client_of(idle_expiry_s=0.0) as client:
        for _ in range(2):
            response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
            await response.read()
            response.release()
        assert server.accepted == 2


# --- bodies ---------------------------------------------------------------------------------


async def test_large_request_body_arrives_whole() -> None:
    body = os.urandom(1024 * 1024 + 3)
    async with raw_server(keep_alive_json) as server, client_of() as client:
        response = await client.post(server.url(), body, ANTHROPIC, **TIMEOUTS)
        await response.read()
        response.release()
        assert server.bodies == [body]
        assert f"content-length: {len(body)}\r\n" in server.heads[0]


async def test_chunked_stream_hands_out_chunks_before_the_answer_ends() -> None:
    more = asyncio.Event()

    async def sse(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while await read_request(reader, server):
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n" + chunk(b"data: 1\n\n")
            )
            await writer.drain()
            await more.wait()
            writer.write(chunk(b"data: 2\n\n") + b"0\r\n\r\n")
            await writer.drain()

    async with raw_server(sse) as server, client_of() as client:
        response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        chunks = response.__aiter__()
        assert await chunks.__anext__() == b"data: 1\n\n"
        assert not response.at_eof()
        more.set()
        assert await response.read() == b"data: 2\n\n"
        assert response.at_eof()
        response.release()
        assert client.idle_connections() == 1


async def test_large_body_survives_read_pauses() -> None:
    payload = os.urandom(3 * 1024 * 1024)

    async def big(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for start in range(0, len(payload), 100_000):
            writer.write(chunk(payload[start : start + 100_000]))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(big) as server, client_of(max_unread_bytes=16 * 1024) as client:
        response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        received = b"".join([c async for c in response])
        assert received == payload
        response.release()


async def test_body_delimited_by_the_connection_end() -> None:
    async def until_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(until_close) as server, client_of() as client:
        response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        assert await response.read() == b"all of it"
        response.release()
        assert client.open_connections == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_answer_is_decoded(encoding: str) -> None:
    original = json.dumps({"text": "x" * 5000}).encode()
    if encoding == "gzip":
        encoded = gzip.compress(original)
    elif encoding == "deflate":
        encoded = zlib.compress(original)
    else:
        squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        encoded = squeeze.compress(original) + squeeze.flush()
    name = "gzip" if encoding == "gzip" else "deflate"

    async def zipped(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while await read_request(reader, server):
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-encoding: %s\r\ntransfer-encoding: chunked\r\n\r\n"
                % name.encode()
                + chunk(encoded[: len(encoded) // 2])
                + chunk(encoded[len(encoded) // 2 :])
                + b"0\r\n\r\n"
            )
            await writer.drain()

    async with raw_server(zipped) as server, client_of() as client:
        response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        assert await response.read() == original
        response.release()
        assert client.idle_connections() == 1


# --- failures -------------------------------------------------------------------------------


async def test_refused_connection_raises_the_client_error() -> None:
    async with raw_server(keep_alive_json) as server:
        port = server.port
    async with client_of() as client:
        with pytest.raises(UpstreamConnectionError) as caught:
            await client.post(f"http://127.0.0.1:{port}/", b"{}", ANTHROPIC, **TIMEOUTS)
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        assert client.open_connections == 0


async def test_dropped_mid_body_raises_and_keeps_the_received_bytes() -> None:
    async def drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"a" * 30)
        await writer.drain()

    async with raw_server(drop) as server, client_of() as client:
        response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        with pytest.raises(UpstreamConnectionError):
            await response.read()
        assert response.unread() == b"a" * 30
        assert not response.at_eof()
        response.release()
        assert client.open_connections == 0

        # Streaming: what was handed out plus what is left is what arrived.
        response = await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        handed: list[bytes] = []
        with pytest.raises(UpstreamConnectionError):
            async for piece in response:
                handed.append(piece)
        assert b"".join(handed) + response.unread() == b"a" * 30
        response.close()


async def test_a_post_is_never_sent_twice_when_the_connection_breaks() -> None:
    async def hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)

    async with raw_server(hang_up) as server, client_of() as client:
        with pytest.raises(UpstreamConnectionError, match="before answering"):
            await client.post(server.url(), b'{"once":1}', ANTHROPIC, **TIMEOUTS)
        assert server.bodies == [b'{"once":1}'] and server.accepted == 1


async def test_garbage_answer_is_a_connection_error() -> None:
    async def garbage(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_server(garbage) as server, client_of() as client:
        with pytest.raises(UpstreamConnectionError, match="not HTTP"):
            await client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS)
        assert client.open_connections == 0


async def test_first_byte_timeout() -> None:
    async def mute(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        await reader.read()

    async with raw_server(mute) as server, client_of() as client:
        with pytest.raises(UpstreamTimeoutError) as caught:
            await client.post(server.url(), b"{}", ANTHROPIC, connect_timeout=5, read_timeout=0.05)
        assert isinstance(caught.value, TimeoutError)
        assert client.open_connections == 0


async def test_headers_within_bounds_waiting_for_a_connection_and_the_headers_together() -> None:
    """``headers_within`` is one budget for the whole: time spent waiting for a free
    connection is not given again to the wait for the headers, and neither wait's own
    (longer) timeout extends it."""

    async def slow(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while await read_request(reader, server):
            await asyncio.sleep(0.3)
            writer.write(answer(b"{}"))
            await writer.drain()

    async with raw_server(slow) as server, client_of(limit=1) as client:
        loop = asyncio.get_running_loop()
        busy = asyncio.ensure_future(client.post(server.url(), b"{}", ANTHROPIC, **TIMEOUTS))
        await server.received.wait()
        started = loop.time()
        # The connection frees after ~0.3 s; the answer would take another 0.3 s: past 0.45.
        with pytest.raises(UpstreamTimeoutError):
            await client.post(
                server.url(),
                b"{}",
                ANTHROPIC,
                connect_timeout=5,
                read_timeout=5,
                headers_within=0.45,
            )
        assert loop.time() - started < 1.0
        (await busy).release()
        # Within the budget, the same wait succeeds.
        response = await client.post(
            server.url(), b"{}", ANTHROPIC, connect_timeout=5, read_timeout=5, headers_within=2
        )
        assert await response.read() == b"{}"
        response.release()


async def test_gap_between_chunks_timeout_then_close_abandons_the_stream() -> None:
    async def stall(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunk(b"data: 1\n\n")
        )
        await writer.drain()
        await reader.read()  # returns when the client drops the connection

    async with raw_server(stall) as server, client_of() as client:
        response = await client.post(
            server.url(), b"{}", ANTHROPIC, connect_timeout=5, read_timeout=0.05
        )
        chunks = response.__aiter__()
        assert await chunks.__anext__() == b"data: 1\n\n"
        with pytest.raises(UpstreamTimeoutError):
            await chunks.__anext__()
        response.close()
        await server.closed.wait()
        assert client.open_connections == 0


async def test_line_breaks_in_header_values_are_refused() -> None:
    async with raw_server(keep_alive_json) as server, client_of() as client:
        with pytest.raises(ValueError, match="line break"):
            await client.post(server.url(), b"{}", {"x-api-key": "a\r\nx-evil: 1"}, **TIMEOUTS)
        assert server.accepted == 0


# --- TLS ------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_with_a_custom_ssl_context(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with raw_server(keep_alive_json, server_context) as server:
        url = f"https://localhost:{server.port}/v1/messages"
        async with client_of(ssl_context=trusting) as client:
            for n in (1, 2):
                response = await client.post(url, b"{}", ANTHROPIC, **TIMEOUTS)
                assert await response.read() == b'{"n":%d}' % n
                response.release()
            assert server.accepted == 1
            assert f"host: localhost:{server.port}\r\n" in server.heads[0]
        # The default context does not trust a self-signed certificate.
        async with client_of() as client:
            with pytest.raises(UpstreamConnectionError) as caught:
                await client.post(url, b"{}", ANTHROPIC, **TIMEOUTS)
            assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)


# --- proxies --------------------------------------------------------------------------------


async def test_proxy_variable_routes_through_aiohttp_and_no_proxy_exempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def forward(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proxy: RawServer
    ) -> None:
        """A forward proxy for one request: absolute-form in, origin-form upstream."""
        if not await read_request(reader, proxy):
            return
        method, target, version = proxy.heads[-1].split("\r\n", 1)[0].split(" ")
        rest = target.split("://", 1)[1]
        authority, _, path = rest.partition("/")
        host, _, port = authority.partition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        head = proxy.heads[-1].split("\r\n", 1)[1]
        up_writer.write(f"{method} /{path} {version}\r\n{head}".encode() + proxy.bodies[-1])
        await up_writer.drain()
        while data := await up_reader.read(65536):
            writer.write(data)
            await writer.drain()
        up_writer.close()

    async def close_after_one(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(answer(b'{"via":"upstream"}', extra="connection: close\r\n"))
        await writer.drain()

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with raw_server(forward) as proxy, raw_server(close_after_one) as upstream:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        client = client_from_environment(os.environ)
        assert isinstance(client, ProxyAwareClient) and client.uses_proxy(upstream.url())
        try:
            response = await client.post(upstream.url(), b"{}", ANTHROPIC, **TIMEOUTS)
            assert response.status == 200
            assert response.headers.get("Content-Type") == "application/json"
            assert [c async for c in response] == [b'{"via":"upstream"}']
            assert response.at_eof() and response.unread() == b""
            response.release()
        finally:
            await client.aclose()
        assert proxy.heads[0].startswith(f"POST {upstream.url()} HTTP/1.1")
        assert upstream.heads[0].startswith("POST /v1/messages HTTP/1.1")

        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        client = client_from_environment(os.environ)
        assert isinstance(client, ProxyAwareClient) and not client.uses_proxy(upstream.url())
        try:
            response = await client.post(upstream.url(), b"{}", ANTHROPIC, **TIMEOUTS)
            assert await response.read() == b'{"via":"upstream"}'
            response.release()
        finally:
            await client.aclose()
        assert len(proxy.heads) == 1 and len(upstream.heads) == 2


async def test_proxied_failures_map_to_the_client_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    async def drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"a" * 30)
        await writer.drain()

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with raw_server(drop) as closed:
        port = closed.port
    # The proxy itself refuses connections: a connection error, not an aiohttp one.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    client = client_from_environment(os.environ)
    try:
        with pytest.raises(UpstreamConnectionError):
            await client.post("http://example.invalid/v1/messages", b"{}", ANTHROPIC, **TIMEOUTS)
    finally:
        await client.aclose()


def test_no_proxy_rules() -> None:
    client = client_from_environment(
        {"https_proxy": "http://proxy:3128", "no_proxy": ".corp,10.1.2.3"}
    )
    assert isinstance(client, ProxyAwareClient)
    assert client.uses_proxy("https://api.anthropic.com/v1/messages")
    assert not client.uses_proxy("https://llm.corp/v1/messages")
    assert not client.uses_proxy("https://a.llm.corp:8443/v1")
    assert not client.uses_proxy("https://10.1.2.3/v1")
    assert not client.uses_proxy("http://api.anthropic.com/v1")  # no http_proxy set
    assert isinstance(client_from_environment({"no_proxy": "*"}), HTTPClient)


def test_a_client_moved_to_another_event_loop_opens_fresh_connections() -> None:
    with FakeUpstream.start() as upstream:
        client = HTTPClient()
        url = upstream.base_url + "/v1/messages"

        async def call() -> int:
            response = await client.post(url, MESSAGE, ANTHROPIC, **TIMEOUTS)
            await response.read()
            response.release()
            return response.status

        assert asyncio.run(call()) == 200
        assert client.idle_connections() == 1
        # The pooled connection belongs to the first, closed loop: not handed out again.
        assert asyncio.run(call()) == 200
        assert client.open_connections == 1
        assert len(upstream.requests) == 2
        asyncio.run(client.aclose())
        # A closed loop cannot close its sockets any more; the collector reclaims them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


async def test_query_strings_with_spaces_or_line_breaks_are_refused() -> None:
    async with raw_server(keep_alive_json) as server, client_of() as client:
        for query in ("?a b", "?a\r\nx-evil: 1"):
            with pytest.raises(ValueError, match="query string"):
                await client.post(server.url() + query, b"{}", ANTHROPIC, **TIMEOUTS)
        response = await client.post(server.url() + "?beta=true", b"{}", ANTHROPIC, **TIMEOUTS)
        await response.read()
        response.release()
        assert server.heads[0].startswith("POST /v1/messages?beta=true HTTP/1.1\r\n")


async def _no_sleep(_: float) -> None:
    return None


async def test_gateway_calls_a_tls_upstream_through_an_injected_client(tmp_path: Path) -> None:
    """GatewayDeps.http_client is the injection point: here, a client that trusts a
    self-signed upstream. Per-call headers (beta flags, query) ride on the cached ones."""
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 2},
    }

    async def anthropic(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while await read_request(reader, server):
            writer.write(answer(json.dumps(message).encode()))
            await writer.drain()

    async with raw_server(anthropic, server_context) as upstream:
        accountant = memory_accountant()
        deps = GatewayDeps(
            http_client=lambda: HTTPClient(ssl_context=ssl.create_default_context(cafile=cert)),
            sleep=_no_sleep,
            rand=lambda: 0.0,
        )
        app = make_app(gateway_config(f"https://localhost:{upstream.port}"), accountant, deps)
        api_key = accountant.add_key("alice", "payments")
        gateway = ServerThread(app).start()
        try:
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
                for beta in ("tools-1", "tools-2"):
                    response = await http.post(
                        "/v1/messages?beta=true",
                        json={
                            "model": "haiku",
                            "max_tokens": 10,
                            "messages": [{"role": "user", "content": "hello"}],
                        },
                        headers={"x-api-key": api_key, "anthropic-beta": beta},
                    )
                    assert response.status_code == 200
                    assert response.json()["content"][0]["text"] == "hi"
        finally:
            gateway.stop()
    assert upstream.accepted == 1  # both calls on one kept-alive TLS connection
    for head, beta in zip(upstream.heads, ("tools-1", "tools-2"), strict=True):
        assert head.startswith("POST /v1/messages?beta=true HTTP/1.1\r\n")
        assert f"anthropic-beta: {beta}\r\n" in head
        assert "anthropic-version: 2023-06-01\r\n" in head
        assert api_key not in head  # the client's own key never leaves the gateway
    assert [e.usage.input_tokens for e in accountant.entries] == [7, 7]
    assert all(e.outcome == "ok" for e in accountant.entries)
