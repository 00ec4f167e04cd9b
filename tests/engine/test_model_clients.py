"""Both model clients through the real gateway: attribution reaches the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestra.accounting import Accounting
from orchestra.app import Orchestra
from orchestra.demo import scripted_config
from orchestra.engine.gateway_link import LocalRunKeys
from orchestra.engine.model import (
    Attribution,
    BudgetExhausted,
    HttpModelClient,
    InProcessModelClient,
)
from orchestra.gateway import Gateway, GatewayApp
from orchestra.gateway.store_accountant import StoreAccountant
from orchestra.store import Database, open_database
from orchestra.testing import FakeUpstream, Reply

REQUEST = {"model": "haiku", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'o.db'}")
    yield db
    db.dispose()


def _entries(accounting: Any, run_id: str) -> list[Any]:
    return [e for e in accounting.ledger.entries() if e.attribution.run_id == run_id]


def test_in_process_client_goes_through_the_gateway_core(database: Database) -> None:
    with FakeUpstream.start() as up:
        up.script(Reply(text="hello"))
        config = scripted_config(up.base_url)
        accounting = Accounting(database, config)
        accounting.start()
        secret, _ = accounting.keys.create("engine", name="engine")
        client = InProcessModelClient(
            GatewayApp(Gateway(config, StoreAccountant(accounting))), secret
        )
        try:
            reply = client.create(REQUEST, Attribution("run-a", "plan-1", "chief-architect"))
        finally:
            client.close()
        entries = _entries(accounting, "run-a")
        accounting.close()
    assert reply.content == [{"type": "text", "text": "hello"}]
    assert reply.model == "scripted-haiku"
    assert reply.usage.input_tokens > 0
    assert [(e.attribution.step, e.attribution.agent) for e in entries] == [
        ("plan-1", "chief-architect")
    ]


def test_http_client_gets_a_budget_refusal_from_the_gateway(tmp_path: Path) -> None:
    with FakeUpstream.start() as up:
        config = scripted_config(up.base_url)
        services = Orchestra(f"sqlite:///{tmp_path / 'o.db'}", tmp_path, config_given=config)
        with services, services.local_gateway() as gateway:
            keys = LocalRunKeys(gateway.accounting, "developer")
            client = HttpModelClient(gateway.base_url, "")
            try:
                client.use_key("run-b", keys.open("run-b", 0.0001))
                client.use_key("run-c", keys.open("run-c", None))
                with pytest.raises(BudgetExhausted, match="run:run-b"):
                    client.create({**REQUEST, "max_tokens": 4096}, Attribution("run-b", "s", "a"))
                ok = client.create(REQUEST, Attribution("run-c", "s", "a"))
            finally:
                client.close()
            costs = gateway.costs_for_run("run-c")
    assert ok.content
    assert len(up.requests) == 1  # the refused call never reached the upstream
    assert list(costs) == ["s"] and costs["s"] > 0
