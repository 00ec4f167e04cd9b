"""Fixtures: the fake host of known capacity behind a real gateway on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from orchestra.accounting import Accounting, Attribution, LedgerEntry
from orchestra.accounting.store import utcnow
from orchestra.gateway import MemoryAccountant
from orchestra.store import open_database
from orchestra.testing import FakeUpstream, HostCapacity
from tests.gateway.helpers import ServerThread, gateway_config, make_app, memory_accountant

# 8 slots, 4 tokens at 10 tokens/s: 0.4 s a reply; 12 may wait. With an SLO of p90 ≤ 1.1 s
# two rounds of slots fit: 16 clients (see HostCapacity.max_concurrency); with 17, one request
# in 8 waits a third round (1.2 s) once the level is steady, which the 10% tolerance allows a
# short level not to show; with 18 or more the p90 misses from the first round. A paced reply
# is never early, so 0.1 s below three rounds is margin enough; the 0.3 s above two rounds
# absorbs the gateway's overhead on a busy machine. Few tokens keep the work of the client,
# the gateway and the fake (one process) small. The sweep measures eight levels (1, 2, 4, 8,
# 16, 20, 18, 17) for half a second each, plus the requests in flight: the test takes some
# 10 s, the price of measuring latency rather than asserting it.
HOST = HostCapacity(slots=8, tokens_per_s=10, queue=12, max_output_tokens=4)
TOKENS = 4
SLO_S = 1.1


@dataclass
class Stack:
    upstream: FakeUpstream
    gateway: ServerThread
    accountant: MemoryAccountant
    key: str


@pytest.fixture
def stack() -> Iterator[Stack]:
    with FakeUpstream.start(capacity=HOST) as upstream:
        accountant = memory_accountant()
        # No retries: a 503 beyond the host's queue is an error the sweep must see.
        config = gateway_config(upstream.base_url, retry={"max_attempts": 1})
        server = ServerThread(make_app(config, accountant)).start()
        try:
            yield Stack(upstream, server, accountant, accountant.add_key("alice", "payments"))
        finally:
            server.stop()


def seed_ledger(url: str) -> None:
    """A peak hour of 30 calls by 2 developers (15 an hour each), and $600 of cloud spend
    by them over 10 days."""
    db = open_database(url)
    acc = Accounting(db, pepper=b"p")
    peak = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for minute in range(15):
        for developer in ("alice", "bob"):
            at = peak + timedelta(minutes=minute)
            acc.ledger.append(
                LedgerEntry(Attribution(developer=developer), "sonnet", started_at=at, ended_at=at)
            )
    for developer, days, cost in (("alice", 12, "100"), ("bob", 2, "500")):
        at = utcnow() - timedelta(days=days)
        acc.ledger.append(
            LedgerEntry(
                Attribution(developer=developer),
                "sonnet",
                started_at=at,
                ended_at=at,
                cost_usd=Decimal(cost),
            )
        )
    acc.close()
    db.dispose()
