"""The database accountant's queued finish (``journal_and_queue``): durable at once, and
committed by the time the gateway has shut down, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from orchestra.config.paths import orchestra_home
from orchestra.gateway.accounts import Caller, CallRecord
from orchestra.gateway.store_accountant import StoreAccountant
from orchestra.providers import Usage
from orchestra.server import build_app
from orchestra.store import open_database
from orchestra.store.tables.gateway import GatewayLedgerEntry
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import ServerThread, gateway_config

COST = Decimal(10 * 1 + 100 * 5) / Decimal(1_000_000)  # claude-haiku-4-5: $1 / $5 per Mtok


def _served(caller: Caller) -> CallRecord:
    """A finished, served call of 10 + 100 tokens on claude-haiku-4-5."""
    return CallRecord(
        request_id=f"req_{uuid.uuid4().hex}",
        started_at=datetime.now(UTC),
        caller=caller,
        client_format="anthropic",
        requested_model="claude-haiku-4-5",
        served_model="claude-haiku-4-5",
        provider="anthropic",
        usage=Usage(10, 100),
        cost_usd=COST,
        outcome="ok",
        status=200,
        latency_ms=1.5,
    )


async def _lifespan(app: Any, events: list[str]) -> list[str]:
    """Run the ASGI lifespan protocol through ``events``; what the app answered."""
    sent: list[str] = []
    incoming = iter(events)

    async def receive() -> dict[str, Any]:
        return {"type": f"lifespan.{next(incoming)}"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent


def test_shutdown_commits_every_queued_call_and_removes_the_journal(
    database_url: str, upstream: FakeUpstream
) -> None:
    config = gateway_config(
        upstream.base_url,
        budgets=[
            {
                "name": "alice-daily",
                "scope": "developer",
                "subject": "alice",
                "cap_usd": 10.0,
                "period": "day",
            }
        ],
    )
    app = build_app(config, database_url=database_url, include_api=False)
    accountant = app.gateway.accountant
    assert isinstance(accountant, StoreAccountant)
    accounting = accountant.accounting
    # The writer waits for a batch far longer than this test: the calls are still queued
    # when the gateway shuts down.
    accounting.store.committer._defer_s = 60
    secret, _ = accounting.keys.create("alice", team="payments")
    caller = accountant.authenticate(secret)
    assert caller is not None

    async def scenario() -> list[str]:
        await app.gateway.startup()

        # Reservations first: on PostgreSQL they are writer batches, which queued entries
        # ride along with.
        reservations = [
            await accountant.admit(caller, None, "claude-haiku-4-5", 100, Decimal("0.01"))
            for _ in range(40)
        ]

        async def call(reservation: Any) -> str:
            await asyncio.sleep(0)
            record = _served(caller)
            assert accountant.journal_and_queue(reservation, record)
            return record.request_id

        ids = await asyncio.gather(*(call(r) for r in reservations))
        with accounting.store.db.session() as session:  # not entries(): it would flush
            assert session.query(GatewayLedgerEntry).count() == 0  # journal only, so far
        assert await _lifespan(app, ["shutdown"]) == ["lifespan.shutdown.complete"]
        return list(ids)

    ids = asyncio.run(scenario())
    db = open_database(database_url)
    try:
        with db.session() as session:
            stored = session.query(GatewayLedgerEntry).all()
        assert sorted(r.id for r in stored) == sorted(ids)
        assert {(r.outcome, r.cost_nano) for r in stored} == {("ok", 510_000)}
    finally:
        db.dispose()
    assert list((orchestra_home() / "ledger-journal").rglob("*.jsonl*")) == []


def test_a_poisoned_journal_lets_the_gateway_start_and_shows_in_metrics(
    database_url: str, upstream: FakeUpstream
) -> None:
    """A dead process's journal with a line no version can store: the gateway starts,
    stores what it can, quarantines the rest and counts it on ``/metrics``."""
    app = build_app(gateway_config(upstream.base_url), database_url=database_url, include_api=False)
    accountant = app.gateway.accountant
    assert isinstance(accountant, StoreAccountant)
    ledger = accountant.accounting.ledger
    ledger.journal_dir.mkdir(parents=True, exist_ok=True)
    (ledger.journal_dir / "999999-deadbeef.jsonl").write_bytes(
        b'{"op":"row","row":["only","three","values"]}\n'
    )
    secret, _ = accountant.accounting.keys.create("root", admin=True)

    async def scenario() -> str:
        await app.gateway.startup()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.get("/metrics", headers={"x-api-key": secret})
        assert response.status_code == 200
        assert await _lifespan(app, ["shutdown"]) == ["lifespan.shutdown.complete"]
        return response.text

    text = asyncio.run(scenario())
    assert "\norchestra_ledger_quarantined_total 1\n" in text
    assert list(ledger.journal_dir.glob("*.jsonl")) == []
    assert len(list((ledger.journal_dir / "quarantine").glob("*.jsonl"))) == 1


def test_refused_calls_get_their_ledger_rows(database_url: str, upstream: FakeUpstream) -> None:
    """A call refused by a budget or a rate limit has its row (issue 16 #6), queued like a
    finished call: outcome ``budget_refused`` / ``rate_limited``, nothing charged."""
    config = gateway_config(
        upstream.base_url,
        budgets=[
            {
                "name": "bob-tiny",
                "scope": "developer",
                "subject": "bob",
                "cap_usd": 0.000001,
                "period": "day",
            }
        ],
        limits={"developers": {"carol": {"rpm": 1}}},
    )
    app = build_app(config, database_url=database_url, include_api=False)
    accountant = app.gateway.accountant
    assert isinstance(accountant, StoreAccountant)
    accounting = accountant.accounting
    bob, _ = accounting.keys.create("bob", team="payments")
    carol, _ = accounting.keys.create("carol", team="payments")
    server = ServerThread(app).start()
    body = {"model": "haiku", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    try:
        url = f"{server.base_url}/v1/messages"
        refused = httpx.post(url, json=body, headers={"x-api-key": bob, "x-orchestra-step": "s1"})
        assert refused.status_code == 429
        assert httpx.post(url, json=body, headers={"x-api-key": carol}).status_code == 200
        limited = httpx.post(url, json=body, headers={"x-api-key": carol})
        assert limited.status_code == 429
    finally:
        server.stop()
    rows = {
        (e.attribution.developer, e.outcome): e
        for e in accounting.ledger.entries()  # the shutdown committed the queued rows
    }
    assert set(rows) == {("bob", "budget_refused"), ("carol", "ok"), ("carol", "rate_limited")}
    for key in (("bob", "budget_refused"), ("carol", "rate_limited")):
        entry = rows[key]
        assert entry.cost_usd == 0 and entry.usage == Usage()
        assert entry.requested_model == "haiku" and entry.tier == "haiku"
        assert entry.served_model is None and entry.provider is None
    assert rows[("bob", "budget_refused")].error_type == "budget_exceeded"
    assert rows[("bob", "budget_refused")].attribution.step == "s1"
    assert rows[("carol", "rate_limited")].error_type == "rate_limit_exceeded"
    (status,) = accounting.budgets.status()
    assert status.spent_usd == 0 and status.reserved_usd == 0
    assert len(upstream.requests) == 1  # refused calls never went upstream
    accounting.close()
    accounting.store.db.dispose()


def test_back_to_back_calls_near_a_cap_are_not_refused_by_queued_settlements(
    database_url: str, upstream: FakeUpstream
) -> None:
    """Issue 10 §6: each finished call's settlement is queued (its journal line is
    durable); the next call, reserved at once, must not find the previous call's
    reservation still counting ("reserved by calls in flight" with nothing in flight)."""
    config = gateway_config(
        upstream.base_url,
        budgets=[
            {
                "name": "run-cap",
                "scope": "developer",
                "subject": "alice",
                "cap_usd": 0.05,
                "period": "day",
            }
        ],
        budget_leases={"enabled": False},
    )
    app = build_app(config, database_url=database_url, include_api=False)
    accountant = app.gateway.accountant
    assert isinstance(accountant, StoreAccountant)
    accounting = accountant.accounting
    accounting.store.committer._defer_s = 60  # queued settlements wait: the worst case
    secret, _ = accounting.keys.create("alice", team="payments")
    caller = accountant.authenticate(secret)
    assert caller is not None

    async def calls() -> None:
        await app.gateway.startup()
        for _ in range(10):  # each holds 0.03 of 0.05 while in flight, costs 0.00051
            reservation = await accountant.admit(
                caller, None, "claude-haiku-4-5", 100, Decimal("0.03")
            )
            record = _served(caller)
            assert accountant.journal_and_queue(reservation, record)
        assert await _lifespan(app, ["shutdown"]) == ["lifespan.shutdown.complete"]

    asyncio.run(calls())
    (status,) = accounting.budgets.status()
    assert status.spent_usd == 10 * COST and status.reserved_usd == 0
    accounting.close()
    accounting.store.db.dispose()
