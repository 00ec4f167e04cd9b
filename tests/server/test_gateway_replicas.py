"""Two ``orchestra gateway`` processes behind one address (``--reuse-port``), sharing rate
limits, circuit breakers and metrics through a real Redis and budgets through a real
PostgreSQL, under concurrent load spread over both (issue 14 §5)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from orchestra.accounting import Accounting
from orchestra.config import load_config
from orchestra.store import open_database
from tests.conftest import POSTGRES_ENV, scratch_postgres_database
from tests.gateway.redis_state import redis_prefix, redis_url
from tests.server.helpers import free_port, start_gateway, start_upstream, stop, write_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BODY = {"model": "haiku", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Deployment:
    """Two replicas on one port, their upstream, database and an admin and a user key."""

    url: str
    replicas: list[Popen[bytes]]
    upstream_url: str
    database_url: str
    key: str
    admin: str

    def call(self, _: object = None) -> httpx.Response:
        # A new connection per call: SO_REUSEPORT spreads connections, not requests.
        return httpx.post(
            f"{self.url}/v1/messages", json=BODY, headers={"x-api-key": self.key}, timeout=30
        )

    def metrics(self) -> str:
        headers = {"authorization": f"Bearer {self.admin}"}
        return httpx.get(f"{self.url}/metrics", headers=headers, timeout=10).text


def _postgres() -> Iterator[str]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    with scratch_postgres_database(url) as scratch:
        yield scratch


def _both_replicas_answer(url: str, replicas: list[Popen[bytes]]) -> None:
    """Wait until ``/readyz`` on the shared port has been answered by each process."""
    wanted = {str(p.pid) for p in replicas}
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while not wanted <= seen:
        assert time.monotonic() < deadline, f"replicas answering: {seen}, wanted {wanted}"
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2).json()
            seen.add(ready["replica"].rpartition(":")[2])
        except httpx.HTTPError:
            time.sleep(0.1)


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))  # the keys' hashing secret lives here
    redis = redis_url()
    database_gen = _postgres()
    database_url = next(database_gen)
    upstream, upstream_url = start_upstream()
    replicas: list[Popen[bytes]] = []
    with redis_prefix(redis) as prefix:
        config = write_config(
            tmp_path,
            upstream_url,
            # A generous timeout: this machine may be loaded (Redis answers in microseconds).
            shared_state={"url": redis, "prefix": prefix, "metrics_flush_s": 0.2, "timeout_s": 5},
            limits={"key": {"rpm": 20}},
            circuit={"failure_threshold": 2, "reset_after_s": 60},
            retry={"max_attempts": 1},
            budgets=[
                {
                    "name": "alice-month",
                    "scope": "developer",
                    "subject": "alice",
                    "cap_usd": 0.05,
                    "period": "month",
                }
            ],
        )
        database = open_database(database_url)  # migrated here, once
        accounting = Accounting(database, load_config(config))
        key, _ = accounting.keys.create("alice", "payments")
        admin, _ = accounting.keys.create("root", None, admin=True)
        accounting.close()
        database.dispose()
        port = free_port()
        try:
            for _ in range(2):
                # A loaded machine (2 cores, other suites) may take a while to start one.
                replicas.append(
                    start_gateway(
                        config, database_url, home, port, extra=["--reuse-port"], ready_within_s=120
                    )
                )
            url = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            _both_replicas_answer(url, replicas)
            print(f"both replicas answered after {time.monotonic() - started:.1f}s")
            yield Deployment(url, replicas, upstream_url, database_url, key, admin)
        finally:
            for proc in replicas:
                stop(proc)
            stop(upstream)
            database_gen.close()


def _script(upstream_url: str, *steps: dict[str, Any]) -> None:
    httpx.post(f"{upstream_url}/_fake/script", json=list(steps), timeout=5).raise_for_status()


def _outside_a_minute_boundary() -> None:
    """Start a burst at least 10 s before the next minute (the limit's window: across a
    boundary the sliding window may rightly admit one more)."""
    while time.time() % 60 > 50:
        time.sleep(0.5)


def _statuses(deployment: Deployment, calls: int) -> Counter[int]:
    with ThreadPoolExecutor(8) as pool:
        return Counter(r.status_code for r in pool.map(deployment.call, range(calls)))


def test_two_replicas_share_a_rate_limit_and_one_metrics_view(deployment: Deployment) -> None:
    _script(deployment.upstream_url, {"reply": {"text": "ok"}, "times": 100})
    _outside_a_minute_boundary()
    statuses = _statuses(deployment, 50)
    assert statuses == {200: 20, 429: 30}  # 20 per minute in total, not per replica
    time.sleep(0.6)  # each replica adds its counts every metrics_flush_s (0.2 s)
    ok = 'orchestra_requests_total{endpoint="anthropic",status="200",model="haiku"} 20'
    limited = 'orchestra_requests_total{endpoint="anthropic",status="429",model="haiku"} 30'
    for _ in range(6):  # whichever replica answers the scrape shows the whole deployment
        text_ = deployment.metrics()
        assert ok in text_ and limited in text_
    database = open_database(deployment.database_url)
    try:
        with database.engine.connect() as conn:
            counted = conn.execute(text("SELECT count(*) FROM gateway_rate_counters")).scalar()
    finally:
        database.dispose()
    assert counted == 0  # counted in Redis, not in the database


def test_two_replicas_hold_one_budget_under_concurrent_load(deployment: Deployment) -> None:
    # Each call costs what it reserved, less its input estimate: 1000 output tokens of
    # haiku ($5 per million) = $0.005, so the $0.05 cap holds at most 9 calls in total.
    reply = {"text": "ok", "usage": {"input_tokens": 0, "output_tokens": 1000}}
    _script(deployment.upstream_url, {"reply": reply, "times": 100})
    responses = []
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(deployment.call, range(19)))  # under the rate limit
    statuses = Counter(r.status_code for r in responses)
    refused = [r.json()["error"]["message"] for r in responses if r.status_code == 429]
    assert 1 <= statuses[200] <= 9 and statuses[200] + statuses[429] == 19, statuses
    assert all("budget" in m for m in refused), refused
    database = open_database(deployment.database_url)
    try:
        deadline = time.monotonic() + 10
        while True:  # the replicas' queued ledger rows land within their batch delay
            with database.engine.connect() as conn:
                spent, calls = conn.execute(
                    text(
                        "SELECT coalesce(sum(cost_nano), 0), count(*) FROM gateway_ledger "
                        "WHERE outcome = 'ok'"
                    )
                ).one()
            if calls == statuses[200] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        database.dispose()
    assert calls == statuses[200]
    assert Decimal(spent) / Decimal(10**9) == Decimal("0.005") * statuses[200] <= Decimal("0.05")


def test_a_breaker_opened_through_one_replica_is_open_on_the_other(
    deployment: Deployment,
) -> None:
    _script(deployment.upstream_url, {"fault": {"status": 503}, "times": 2})
    failed = [deployment.call() for _ in range(2)]  # threshold 2, over both replicas
    assert all("answered HTTP 503" in r.json()["error"]["message"] for r in failed)
    time.sleep(0.5)  # sync_s (0.25 s): every replica's view is read again
    answers = [deployment.call() for _ in range(10)]  # spread over both replicas
    assert {r.status_code for r in answers} == {503}
    assert all("circuit breaker is open" in r.json()["error"]["message"] for r in answers)
    upstream_calls = httpx.get(f"{deployment.upstream_url}/_fake/requests", timeout=5).json()
    assert len(upstream_calls) == 2  # nothing reached the failing upstream after it opened
    assert 'orchestra_circuit_state{upstream="anthropic"} 2' in deployment.metrics()
