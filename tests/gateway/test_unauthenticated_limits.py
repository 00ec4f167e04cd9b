"""Clients without a key cannot exhaust the gateway (issue 16, problem 7): the key is checked
before the body is read, the request head is bounded in size and header count, the head
and the body must arrive in time, one address may hold only so many connections, and keys
that fail are remembered by digest in a bounded table.

Sockets are real (uvicorn on loopback with the gateway's protocol): these limits live in the
HTTP server, below the ASGI application.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from orchestra.gateway.service import MAX_KEY_CHARS, REFUSED_KEY_CACHE_ENTRIES
from orchestra.server.protocol import ConnectionLimits, GatewayHttpProtocol, uvicorn_options
from tests.gateway.helpers import gateway_config, make_app, memory_accountant

ROOT = Path(__file__).resolve().parents[2]


class QuickProtocol(GatewayHttpProtocol):  # type: ignore[misc]
    """The gateway's protocol with deadlines short enough for a test."""

    limits = ConnectionLimits(head_timeout_s=0.6, body_timeout_s=0.6, max_connections_per_client=4)


class Server:
    def __init__(self) -> None:
        accountant = memory_accountant()
        self.key = accountant.add_key("alice", "payments")
        app = make_app(gateway_config("http://127.0.0.1:9"), accountant)
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        options = {**uvicorn_options(), "http": QuickProtocol}
        config = uvicorn.Config(app, log_level="critical", lifespan="on", **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return sock


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    deadline = time.monotonic() + 10
    while not s.server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield s
    s.server.should_exit = True
    s.thread.join(10)
    s.sock.close()


def _answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _healthy(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")


def test_headers_over_the_size_limit_get_431_and_a_close(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-pad: ")
        try:
            for _ in range(128):  # 8 MiB in 64 KiB pieces, as the attack did
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b'"type": "error"' in answer
    _healthy(server)


def test_too_many_headers_get_431(server: Server) -> None:
    lines = b"".join(b"x-h%d: v\r\n" % n for n in range(150))
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + lines + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 431")
    many = b"".join(b"x-h%d: v\r\n" % n for n in range(90))
    with server.connect() as sock:  # under the limit: served
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n" + many + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and says nothing
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n",  # headers never finished
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\ncontent-type: "
        b"application/json\r\ncontent-length: 1000\r\n\r\n{",  # body never finished
    ],
)
def test_slow_clients_are_cut_off(server: Server, sent: bytes) -> None:
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(sent)
        answer = _answer(sock, timeout=10)
        waited = time.monotonic() - started
    assert waited < 4, waited  # 0.6 s deadline, checked every second
    if sent.endswith(b"{"):  # the key is unknown: refused before the body ran late
        assert answer.startswith((b"HTTP/1.1 401", b"HTTP/1.1 408")), answer[:100]
    else:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    _healthy(server)


def test_a_slow_body_with_a_good_key_gets_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: "
            + server.key.encode()
            + b"\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
        )
        answer = _answer(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    _healthy(server)


def test_connections_per_client_are_limited(server: Server) -> None:
    held = [server.connect() for _ in range(4)]
    try:
        time.sleep(0.1)
        with server.connect() as extra:
            assert _answer(extra).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    _healthy(server)  # closing gave the slots back


def test_a_keyless_request_is_answered_before_its_body_and_closed(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 30000000\r\n\r\n{"
        )
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 401")
    assert b"connection: close" in answer.lower()
    assert b"authentication_error" in answer


def test_refused_keys_are_cached_by_digest_in_a_bounded_table() -> None:
    # Private state on purpose: what the cache holds is the point of the test.
    accountant = memory_accountant()
    config = gateway_config("http://127.0.0.1:9", key_cache_ttl_s=60)
    gateway = make_app(config, accountant).gateway
    asked: list[str] = []
    lookup = accountant.authenticate

    def counting(secret: str) -> object:
        asked.append(secret)
        return lookup(secret)

    accountant.authenticate = counting  # type: ignore[method-assign]

    async def scenario() -> None:
        for n in range(REFUSED_KEY_CACHE_ENTRIES * 3):
            with pytest.raises(Exception, match="invalid"):
                await gateway.authenticate({"x-api-key": f"orc_garbage_{n:06d}" + "x" * 200})
        with pytest.raises(Exception, match="invalid"):
            await gateway.authenticate({"x-api-key": "y" * (MAX_KEY_CHARS + 1)})
        with pytest.raises(Exception, match="invalid"):
            await gateway.authenticate({"x-api-key": "orc_garbage_000000" + "x" * 200})

    asyncio.run(scenario())
    refused = gateway._refused_keys
    assert 0 < len(refused) <= REFUSED_KEY_CACHE_ENTRIES
    assert all(isinstance(k, bytes) and len(k) == 32 for k in refused)
    assert not any("y" * 50 in s for s in asked)  # the over-long key was never looked up
    gateway.executor.shutdown()


_SERVE = """
import sys, uvicorn
from orchestra.server.protocol import uvicorn_options
from tests.gateway.helpers import gateway_config, make_app, memory_accountant
app = make_app(gateway_config("http://127.0.0.1:9"), memory_accountant())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="critical", **uvicorn_options())
"""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_ten_keyless_clients_with_large_bodies_do_not_grow_the_gateway() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    if _answer(sock).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        before = _rss_kib(proc.pid)
        peak = [before]
        size = 30 * 1024 * 1024  # under gateway.max_body_bytes (32 MiB)
        chunk = b"x" * (1024 * 1024)

        def keyless() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
                    b"\r\ncontent-length: %d\r\n\r\n" % size
                )
                try:
                    for _ in range(size // len(chunk)):
                        sock.sendall(chunk)
                except OSError:
                    pass  # refused and closed: the point
                _answer(sock)

        clients = [threading.Thread(target=keyless) for _ in range(10)]
        for thread in clients:
            thread.start()
        while any(t.is_alive() for t in clients):
            peak.append(_rss_kib(proc.pid))
            time.sleep(0.02)
        for thread in clients:
            thread.join()
        after = _rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    grown = (max(peak) - before) / 1024
    print(f"gateway RSS: before {before / 1024:.1f} MiB, peak {max(peak) / 1024:.1f} MiB,")
    print(f"after {after / 1024:.1f} MiB (10 keyless clients, 30 MiB bodies): +{grown:.1f} MiB")
    assert grown < 5, f"RSS grew by {grown:.1f} MiB"
