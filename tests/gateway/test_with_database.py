"""The gateway over the real accounting (keys, budgets, limits, ledger) on SQLite and
PostgreSQL: budgets under concurrency, ledger entries, disconnects, revocation, limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from orchestra.accounting import Accounting, LedgerEntry
from orchestra.gateway import GatewayApp
from orchestra.providers import Usage
from orchestra.server import build_app
from orchestra.testing import FakeUpstream, Reply
from tests.gateway.helpers import ServerThread, gateway_config

MESSAGES = [{"role": "user", "content": "hello"}]
CALL_USAGE = Usage(input_tokens=10, output_tokens=100)
CALL_COST = Decimal(10 * 1 + 100 * 5) / Decimal(1_000_000)  # claude-haiku-4-5: $1 / $5 per Mtok


@dataclass
class DbGateway:
    app: GatewayApp
    server: ServerThread
    accounting: Accounting

    @property
    def url(self) -> str:
        return self.server.base_url

    def key(self, developer: str, team: str = "payments", admin: bool = False) -> str:
        secret, _ = self.accounting.keys.create(developer, team, admin=admin)
        return secret


def entries(gw: DbGateway, count: int) -> list[LedgerEntry]:
    """The ledger once it holds ``count`` entries: a served call is journaled before the
    answer and committed to the database right after it."""
    deadline = time.monotonic() + 10
    while True:
        found = gw.accounting.ledger.entries()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _start(database_url: str, upstream: FakeUpstream, **gateway: Any) -> DbGateway:
    config = gateway_config(upstream.base_url, **gateway)
    app = build_app(config, database_url=database_url, include_api=False)
    accounting = app.gateway.accountant.accounting  # type: ignore[attr-defined]
    return DbGateway(app, ServerThread(app).start(), accounting)


@pytest.fixture
def db_gateway(database_url: str, upstream: FakeUpstream) -> Iterator[DbGateway]:
    gw = _start(
        database_url,
        upstream,
        budgets=[
            {
                "name": "alice-daily",
                "scope": "developer",
                "subject": "alice",
                "cap_usd": float(CALL_COST * 10),
                "period": "day",
            }
        ],
    )
    try:
        yield gw
    finally:
        gw.server.stop()


def test_concurrent_requests_cannot_overspend_the_budget(
    db_gateway: DbGateway, upstream: FakeUpstream
) -> None:
    upstream.responder = lambda request: Reply(text="ok", usage=CALL_USAGE, delay_s=0.01)
    key = db_gateway.key("alice")

    async def one(i: int, client: httpx.AsyncClient) -> httpx.Response:
        if i % 2:
            return await client.post(
                "/v1/messages",
                json={"model": "haiku", "max_tokens": 100, "messages": MESSAGES},
                headers={"x-api-key": key},
            )
        return await client.post(
            "/v1/chat/completions",
            json={"model": "haiku", "max_tokens": 100, "messages": MESSAGES},
            headers={"authorization": f"Bearer {key}"},
        )

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=db_gateway.url, timeout=60, limits=limits) as c:
            return await asyncio.gather(*(one(i, c) for i in range(100)))

    responses = asyncio.run(run())
    served = [r for r in responses if r.status_code == 200]
    refused = [(i, r) for i, r in enumerate(responses) if r.status_code != 200]
    assert 1 <= len(served) <= 10
    assert len(served) + len(refused) == 100
    for i, response in refused:
        assert response.status_code == 429
        assert "alice-daily" in response.text
        assert int(response.headers["retry-after"]) > 0
        body = response.json()
        if i % 2:
            assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
        else:
            assert body["error"]["type"] == "rate_limit_error" and "type" not in body
    recorded = entries(db_gateway, len(served))
    assert len([e for e in recorded if e.outcome == "ok"]) == len(served)
    spent = sum((e.cost_usd or Decimal(0) for e in recorded), Decimal(0))
    assert spent == CALL_COST * len(served)
    [status] = db_gateway.accounting.budgets.status("alice-daily")
    assert status.spent_usd == spent <= status.spec.cap_usd
    assert status.reserved_usd == 0  # every reservation settled


def test_ledger_entry_has_attribution_and_path(
    db_gateway: DbGateway, upstream: FakeUpstream
) -> None:
    key = db_gateway.key("bob", "platform")
    upstream.script(Reply(text="hi", usage=Usage(5, 7, cache_read_tokens=3, cache_write_tokens=2)))
    response = httpx.post(
        f"{db_gateway.url}/v1/messages",
        json={"model": "claude-sonnet-4-7-20260801", "max_tokens": 20, "messages": MESSAGES},
        headers={"x-api-key": key, "x-orchestra-agent": "reviewer", "x-orchestra-run": "r1"},
    )
    assert response.status_code == 200
    [entry] = entries(db_gateway, 1)
    assert entry.attribution.developer == "bob"
    assert entry.attribution.squad == "platform"
    assert (entry.attribution.agent, entry.attribution.run_id) == ("reviewer", "r1")
    assert (entry.tier, entry.requested_model, entry.served_model) == (
        "sonnet",
        "claude-sonnet-4-7-20260801",
        "claude-sonnet-4-5",
    )
    assert entry.usage == Usage(5, 7, cache_read_tokens=3, cache_write_tokens=2)
    # sonnet per Mtok: input $3, output $15, cache write $3.75, cache read $0.30
    per_mtok = 5 * Decimal(3) + 7 * Decimal(15) + 2 * Decimal("3.75") + 3 * Decimal("0.30")
    expected = per_mtok / 10**6
    assert entry.cost_usd == expected
    assert entry.fallback_path == ("claude-sonnet-4-5:ok",)
    spend = httpx.get(f"{db_gateway.url}/v1/orchestra/spend", headers={"x-api-key": key})
    assert spend.status_code == 200
    assert spend.json()["developer"] == "bob"
    assert spend.json()["total_requests"] == 1
    assert spend.json()["total_usd"] == str(expected)
    assert httpx.get(f"{db_gateway.url}/metrics", headers={"x-api-key": key}).status_code == 403
    admin = db_gateway.key("root", admin=True)
    metrics = httpx.get(f"{db_gateway.url}/metrics", headers={"x-api-key": admin}).text
    assert 'orchestra_budget_headroom_usd{budget="alice-daily"}' in metrics


def test_client_disconnect_mid_stream_is_recorded(
    db_gateway: DbGateway, upstream: FakeUpstream
) -> None:
    key = db_gateway.key("carol")
    upstream.script(Reply(text="word " * 200, chunk_delay_s=0.02, chunk_chars=5))
    with httpx.stream(
        "POST",
        f"{db_gateway.url}/v1/messages",
        json={"model": "haiku", "max_tokens": 500, "messages": MESSAGES, "stream": True},
        headers={"x-api-key": key},
    ) as response:
        for _ in response.iter_raw():
            break
    [entry] = entries(db_gateway, 1)
    assert entry.outcome == "client_disconnected"
    assert entry.stream
    assert entry.usage.input_tokens > 0


def test_revoked_key_and_rate_limit(database_url: str, upstream: FakeUpstream) -> None:
    gw = _start(database_url, upstream, limits={"key": {"rpm": 2}})
    try:
        key = gw.key("dave")
        body = {"model": "haiku", "max_tokens": 5, "messages": MESSAGES}
        headers = {"x-api-key": key}
        codes = [httpx.post(f"{gw.url}/v1/messages", json=body, headers=headers) for _ in range(3)]
        assert [c.status_code for c in codes] == [200, 200, 429]
        assert "rate limit" in codes[2].json()["error"]["message"]
        assert int(codes[2].headers["retry-after"]) >= 1
        other = gw.key("erin")
        [record] = [k for k in gw.accounting.keys.list() if k.developer == "erin"]
        gw.accounting.keys.revoke(record.id)
        time.sleep(0.01)
        revoked = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": other})
        assert revoked.status_code == 401
        assert revoked.json()["error"]["type"] == "authentication_error"
    finally:
        gw.server.stop()


def test_the_journal_stays_bounded_while_a_stream_is_always_open(
    database_url: str, upstream: FakeUpstream
) -> None:
    """Sustained traffic with a stream open the whole time (as with Claude Code): the
    journal, which used to be emptied only when no stream was open, stays small."""

    def reply(request: Any) -> Reply:
        if (request.json or {}).get("stream"):
            # About 100 chunks (the fake cuts at max_tokens) of 0.05 s: ~5 s of stream, well
            # beyond the waves even on a loaded machine (0.01 s ended it first under load).
            return Reply(text="tick " * 400, chunk_delay_s=0.05, chunk_chars=5)
        return Reply(text="ok", usage=CALL_USAGE)

    upstream.responder = reply
    gw = _start(database_url, upstream)
    ledger = gw.accounting.ledger
    ledger.journal_max_bytes = 8_000  # before the journal's first use
    key = gw.key("alice")
    body = {"model": "haiku", "max_tokens": 100, "messages": MESSAGES}
    sizes: list[int] = []

    async def run() -> int:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:

            async def long_stream() -> None:
                streamed = {**body, "stream": True}
                headers = {"x-api-key": key}
                async with client.stream(
                    "POST", "/v1/messages", json=streamed, headers=headers
                ) as response:
                    async for _ in response.aiter_raw():
                        pass

            streaming = asyncio.ensure_future(long_stream())
            await asyncio.sleep(0.2)
            calls = 0
            for _ in range(12):  # 12 waves of 10 overlapping calls while the stream runs
                answers = await asyncio.gather(
                    *(
                        client.post("/v1/messages", json=body, headers={"x-api-key": key})
                        for _ in range(10)
                    )
                )
                assert all(a.status_code == 200 for a in answers)
                calls += len(answers)
                sizes.append(ledger.journal_size)
            assert not streaming.done()  # a stream was open the whole time
            await streaming
            return calls + 1

    try:
        calls = asyncio.run(run())
        recorded = entries(gw, calls)
        assert len(recorded) == calls
        assert ledger.journal_compactions > 0
    finally:
        gw.server.stop()
    # 121 journaled calls of ~1 kB each went through; the file never held much more than
    # the threshold plus the calls in flight.
    assert max(sizes) <= 8_000 + 2 * 12 * 1_500


def _raw(model: str = "haiku", max_tokens: object = 5, tail: str = "") -> bytes:
    """A request body written by hand: JSON escapes (``\\ud800``) stay as sent."""
    return f'{{"model": "{model}", "max_tokens": {max_tokens}, "messages": []{tail}}}'.encode()


_LONG = "a" * 300
HOSTILE: list[tuple[str, bytes, dict[str, str]]] = [
    # (path, body, extra headers): each is a 400 that reaches no counter, row or journal
    ("/v1/messages", _raw(max_tokens="9" * 309), {}),
    ("/v1/messages", _raw(max_tokens=2**63), {}),
    ("/v1/messages", _raw(max_tokens=2**63 - 100), {}),
    ("/v1/chat/completions", _raw("sonnet", max_tokens=2**63), {}),
    ("/v1/messages", _raw("claude-sonnet-" + _LONG), {}),
    ("/v1/messages", _raw("claude-sonnet-4-5\\u0000"), {}),
    ("/v1/messages", _raw("claude-haiku-\\ud800", tail=', "stream": true'), {}),
    ("/v1/messages", _raw(tail=', "system": "\\ud800"'), {}),
    ("/v1/chat/completions", _raw(tail=', "user": "\\udc00"'), {}),
    ("/v1/messages", _raw(), {"x-orchestra-agent": _LONG}),
    ("/v1/messages", _raw(), {"x-orchestra-step": "s" * 201}),
]


def test_hostile_values_never_reach_the_database_and_restarts_work(
    database_url: str, upstream: FakeUpstream
) -> None:
    """Issue 16: values that poisoned the journal (and so every restart), pushed a shared
    rate counter to the edge of BIGINT, or were served, are 400s on both backends."""
    limits = {"team": {"rpm": 10_000, "tpm": 100_000_000}, "shared": True}
    gw = _start(database_url, upstream, limits=limits)
    key = gw.key("alice")
    try:
        for path, body, extra in HOSTILE:
            headers = {"x-api-key": key, "content-type": "application/json", **extra}
            response = httpx.post(gw.url + path, content=body, headers=headers, timeout=10)
            assert response.status_code == 400, (path, body[:80], response.text)
            error = response.json()
            assert error["error"]["message"]
            assert (error.get("type") == "error") is path.startswith("/v1/messages")
        ok = httpx.post(
            f"{gw.url}/v1/messages",
            json={"model": "haiku", "max_tokens": 5, "messages": MESSAGES},
            headers={"x-api-key": key},
            timeout=10,
        )
        assert ok.status_code == 200  # the team's counter is not at the edge of anything
        assert len(entries(gw, 1)) == 1
    finally:
        gw.server.stop()
    assert len(upstream.requests) == 1
    again = _start(database_url, upstream)  # the journal holds nothing that blocks a start
    try:
        assert httpx.get(f"{again.url}/readyz", timeout=10).status_code == 200
    finally:
        again.server.stop()
