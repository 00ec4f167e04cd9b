"""Fixtures: the fake upstream, a gateway on loopback in front of it, keys."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from orchestra.gateway import GatewayApp, MemoryAccountant
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import ServerThread, gateway_config, make_app, memory_accountant


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test() -> Iterator[None]:
    """Report a leaked socket or client in the test that leaked it. Left to the cyclic
    garbage collector, its ResourceWarning surfaces at a random later allocation, failing
    an unrelated test (it was usually the 100-concurrent-requests budget test).

    What survives the collection is frozen (left out of later collections): the next
    test's collection then walks only the objects made since, not the whole session's heap
    (a full collection took seconds per test late in the suite)."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream.start() as up:
        yield up


@dataclass
class LiveGateway:
    """A gateway served on loopback, its accountant and a developer key."""

    app: GatewayApp
    server: ServerThread
    accountant: MemoryAccountant
    key: str
    admin_key: str

    @property
    def url(self) -> str:
        return self.server.base_url


@pytest.fixture
def live(upstream: FakeUpstream) -> Iterator[LiveGateway]:
    accountant = memory_accountant()
    app = make_app(gateway_config(upstream.base_url), accountant)
    key = accountant.add_key("alice", "payments")
    admin = accountant.add_key("root", None, admin=True)
    server = ServerThread(app).start()
    try:
        yield LiveGateway(app, server, accountant, key, admin)
    finally:
        server.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
