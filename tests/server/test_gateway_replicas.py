"""Two ``orchestra gateway`` processes behind one address (``--reuse-port``), sharing rate
limits, circuit breakers and metrics through a real Redis and budgets through a real
PostgreSQL, under concurrent load spread over both (issue 14 §5)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from orchestra.accounting import Accounting
from orchestra.config import load_config
from orchestra.store import open_database
from tests.conftest import POSTGRES_ENV, scratch_postgres_database
from tests.gateway.redis_state import redis_prefix, redis_url
from tests.server.helpers import free_port, start_gateway, start_upstream, stop

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BODY = {"max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Deployment:
    """Two replicas on one port, their upstream and database, and keys: ``alice`` (under a
    $0.05 budget), ``bob`` (20 calls a minute), ``carol`` and an admin."""

    url: str
    replicas: list[Popen[bytes]]
    upstream_url: str
    database_url: str
    keys: dict[str, str]

    def call(self, who: str, model: str = "haiku") -> httpx.Response:
        # A new connection per call: SO_REUSEPORT spreads connections, not requests.
        return httpx.post(
            f"{self.url}/v1/messages",
            json={**BODY, "model": model},
            headers={"x-api-key": self.keys[who]},
            timeout=60,
        )

    def metrics(self) -> str:
        headers = {"authorization": f"Bearer {self.keys['root']}"}
        return httpx.get(f"{self.url}/metrics", headers=headers, timeout=30).text


def _both_replicas_answer(url: str, replicas: list[Popen[bytes]]) -> None:
    """Wait until ``/readyz`` on the shared port has been answered by each process (a
    loaded machine with 2 cores may take a minute to start one)."""
    wanted = {str(p.pid) for p in replicas}
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    while not wanted <= seen:
        assert time.monotonic() < deadline, f"replicas answering: {seen}, wanted {wanted}"
        assert all(p.poll() is None for p in replicas), "a replica exited"
        try:
            ready = httpx.get(f"{url}/readyz", timeout=5)
            if ready.status_code == 200:
                seen.add(ready.json()["replica"].rpartition(":")[2])
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def _config(folder: Path, upstream_url: str, redis: str, prefix: str) -> Path:
    """Two providers on the fake upstream (so a breaker test on ``flaky`` leaves the
    others' calls alone), a limit, a budget and the shared state."""
    data = {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": upstream_url},
            "flaky": {"kind": "anthropic", "base_url": upstream_url},
        },
        "models": {
            "claude-haiku-4-5": {"provider": "anthropic"},
            "claude-sonnet-4-5": {"provider": "flaky"},
        },
        "tiers": {"haiku": {"model": "claude-haiku-4-5"}, "sonnet": {"model": "claude-sonnet-4-5"}},
        "gateway": {
            "key_cache_ttl_s": 0,
            # A generous timeout: this machine may be loaded (Redis answers in microseconds).
            "shared_state": {
                "url": redis,
                "prefix": prefix,
                "metrics_flush_s": 0.2,
                "timeout_s": 5,
            },
            "limits": {"developers": {"bob": {"rpm": 20}}},
            "circuit": {"failure_threshold": 2, "reset_after_s": 600},
            "retry": {"max_attempts": 1},
            "budgets": [
                {
                    "name": "alice-month",
                    "scope": "developer",
                    "subject": "alice",
                    "cap_usd": 0.05,
                    "period": "month",
                }
            ],
        },
    }
    path = folder / "orchestra.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    redis = redis_url()
    postgres = os.environ.get(POSTGRES_ENV)
    if not postgres:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    folder = tmp_path_factory.mktemp("replicas")
    home = folder / "home"
    with ExitStack() as stack:
        database_url = stack.enter_context(scratch_postgres_database(postgres))
        prefix = stack.enter_context(redis_prefix(redis))
        upstream, upstream_url = start_upstream()
        stack.callback(stop, upstream)
        config = _config(folder, upstream_url, redis, prefix)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ORCHESTRA_HOME", str(home))  # where the keys' hashing secret lives
            database = open_database(database_url)  # migrated here, once
            accounting = Accounting(database, load_config(config))
            keys = {
                who: accounting.keys.create(who, "payments", admin=who == "root")[0]
                for who in ("alice", "bob", "carol", "root")
            }
            accounting.close()
            database.dispose()
        port = free_port()
        replicas: list[Popen[bytes]] = []
        for _ in range(2):
            replicas.append(
                start_gateway(
                    config, database_url, home, port, extra=["--reuse-port"], ready_within_s=180
                )
            )
            stack.callback(stop, replicas[-1])
        url = f"http://127.0.0.1:{port}"
        _both_replicas_answer(url, replicas)
        yield Deployment(url, replicas, upstream_url, database_url, keys)


def _script(upstream_url: str, *steps: dict[str, Any]) -> None:
    """Replace what the fake upstream has queued (and recorded) with ``steps``."""
    httpx.post(f"{upstream_url}/_fake/reset", timeout=5).raise_for_status()
    httpx.post(f"{upstream_url}/_fake/script", json=list(steps), timeout=5).raise_for_status()


def _outside_a_minute_boundary() -> None:
    """Start a burst at least 10 s before the next minute (the limit's window: across a
    boundary the sliding window may rightly admit one more)."""
    while time.time() % 60 > 50:
        time.sleep(0.5)


def _concurrently(deployment: Deployment, who: str, calls: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: deployment.call(who), range(calls)))


def test_two_replicas_share_a_rate_limit_and_one_metrics_view(deployment: Deployment) -> None:
    _script(deployment.upstream_url, {"reply": {"text": "ok"}, "times": 100})
    _outside_a_minute_boundary()
    statuses = Counter(r.status_code for r in _concurrently(deployment, "bob", 50))
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
    responses = _concurrently(deployment, "alice", 19)
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
                        "WHERE outcome = 'ok' AND developer = 'alice'"
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
    failed = [deployment.call("carol", "sonnet") for _ in range(2)]  # threshold 2
    assert all("answered HTTP 503" in r.json()["error"]["message"] for r in failed)
    time.sleep(0.5)  # sync_s (0.25 s): every replica's view is read again
    answers = [deployment.call("carol", "sonnet") for _ in range(10)]  # over both replicas
    assert {r.status_code for r in answers} == {503}
    assert all("circuit breaker is open" in r.json()["error"]["message"] for r in answers)
    upstream_calls = httpx.get(f"{deployment.upstream_url}/_fake/requests", timeout=5).json()
    assert len(upstream_calls) == 2  # nothing reached it after it opened
    text_ = deployment.metrics()
    assert 'orchestra_circuit_state{upstream="flaky"} 2' in text_
    assert 'orchestra_circuit_state{upstream="anthropic"} 0' in text_
    assert deployment.call("carol").status_code == 200  # another provider: unaffected
