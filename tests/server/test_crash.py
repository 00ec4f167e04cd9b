"""SIGKILL the gateway mid-stream, restart it on the same database: nothing is lost."""

from __future__ import annotations

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
