"""SIGKILL the gateway mid-stream, restart it on the same database: nothing is lost."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from orchestra.accounting import Accounting
from orchestra.config import load_config
from orchestra.store import open_database
from tests.server.helpers import free_port, start_gateway, start_upstream, stop, write_config


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_reconciles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))  # same pepper and journal folder
    script = tmp_path / "script.json"
    long_stream = {"text": "tick " * 2000, "chunk_delay_s": 0.01, "chunk_chars": 5}
    script.write_text(json.dumps([{"reply": long_stream, "match": {"stream": True}}]))
    upstream, upstream_url = start_upstream(script)
    database_url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    config_path = write_config(tmp_path, upstream_url)
    config = load_config(config_path)
    database = open_database(database_url)
    accounting = Accounting(database, config)
    key, _ = accounting.keys.create("alice", "payments")
    port = free_port()
    gateway = start_gateway(config_path, database_url, home, port)
    url = f"http://127.0.0.1:{port}"
    try:
        body = {"model": "haiku", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(3):
            done = httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": key})
            assert done.status_code == 200
        received: list[bytes] = []
        streaming = threading.Event()

        def stream() -> None:
            try:
                with httpx.stream(
                    "POST",
                    f"{url}/v1/messages",
                    json={**body, "max_tokens": 5000, "stream": True},
                    headers={"x-api-key": key},
                    timeout=30,
                ) as response:
                    for chunk in response.iter_raw():
                        received.append(chunk)
                        if len(received) > 20:
                            streaming.set()
            except httpx.HTTPError:
                pass

        reader = threading.Thread(target=stream)
        reader.start()
        assert streaming.wait(15), "the stream never started"
        time.sleep(0.3)  # let the journal record some progress
        os.kill(gateway.pid, signal.SIGKILL)
        gateway.wait(10)
        reader.join(15)
        assert received
        before = accounting.ledger.entries()
        assert [e.outcome for e in before] == ["ok", "ok", "ok"]  # durable before the kill

        gateway = start_gateway(config_path, database_url, home, port)
        entries = accounting.ledger.entries()
        assert len(entries) == 4
        [reconciled] = [e for e in entries if e.outcome == "reconciled"]
        assert reconciled.stream
        assert reconciled.attribution.developer == "alice"
        assert reconciled.usage.input_tokens > 0
        assert reconciled.usage.output_tokens > 0  # what was streamed before the kill
        assert reconciled.cost_usd is not None and reconciled.cost_usd > 0
    finally:
        stop(gateway)
        stop(upstream)
        accounting.close()
        database.dispose()


@pytest.mark.slow
def test_sigkill_before_the_response_headers_leaves_one_entry_per_upstream_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """The window issue 16 #5 found: calls that reached the provider, killed before its
    response headers came. Each call is journaled before its upstream request, so after a
    restart each request the fake upstream received has exactly one ledger entry, and the
    reservations they held are settled."""
    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"reply": {"text": "late", "delay_s": 120}, "times": 50}]))
    upstream, upstream_url = start_upstream(script)
    config_path = write_config(
        tmp_path,
        upstream_url,
        budget_leases={"enabled": False},
        budgets=[
            {
                "name": "alice",
                "scope": "developer",
                "subject": "alice",
                "cap_usd": 100,
                "period": "day",
            }
        ],
    )
    config = load_config(config_path)
    database = open_database(database_url)
    accounting = Accounting(database, config)
    key, _ = accounting.keys.create("alice", "payments")
    port = free_port()
    gateway = start_gateway(config_path, database_url, home, port)
    url = f"http://127.0.0.1:{port}"
    calls = 6
    try:
        body = {"model": "haiku", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}

        def call(i: int) -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{url}/v1/messages",
                    json={**body, "stream": i % 2 == 1},
                    headers={"x-api-key": key, "x-orchestra-agent": f"agent-{i}"},
                    timeout=60,
                )

        clients = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 30
        while True:  # every call reached the upstream, none has its response headers
            received = httpx.get(f"{upstream_url}/_fake/requests").json()
            if len(received) == calls or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(received) == calls
        assert accounting.budgets.status()[0].reserved_usd > 0  # six calls in flight
        os.kill(gateway.pid, signal.SIGKILL)
        gateway.wait(10)
        for client in clients:
            client.join(15)
        assert accounting.ledger.entries() == []  # nothing committed before the kill

        gateway = start_gateway(config_path, database_url, home, port)
        entries = accounting.ledger.entries()
        assert len(entries) == len(received) == calls  # one per upstream call, no more
        assert {e.attribution.agent for e in entries} == {f"agent-{i}" for i in range(calls)}
        assert sorted(e.stream for e in entries) == sorted(
            bool(r["json"].get("stream")) for r in received
        )
        for entry in entries:
            assert (entry.outcome, entry.error_type) == ("reconciled", "gateway_crash")
            assert entry.attribution.developer == "alice" and entry.tier == "haiku"
        (status,) = accounting.budgets.status()
        assert status.reserved_usd == 0  # the dead calls' holds were settled, not left
    finally:
        stop(gateway)
        stop(upstream)
        accounting.close()
        database.dispose()
