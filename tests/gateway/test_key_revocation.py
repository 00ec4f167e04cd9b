"""A key revoked or rotated anywhere stops working at once on every gateway worker, even
with a long key cache (issue 16: it used to work on for the cache's TTL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from orchestra.accounting import Accounting
from orchestra.gateway import GatewayApp
from orchestra.server import build_app
from orchestra.store import open_database
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import ServerThread, gateway_config
from tests.polling import eventually

BODY = {"model": "haiku", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def workers(database_url: str, upstream: FakeUpstream) -> Iterator[list[str]]:
    """Two gateway workers on one database, each caching keys for an hour."""
    config = gateway_config(upstream.base_url, key_cache_ttl_s=3600)
    apps: list[GatewayApp] = [
        build_app(config, database_url=database_url, include_api=False) for _ in range(2)
    ]
    servers = [ServerThread(app).start() for app in apps]
    try:
        yield [s.base_url for s in servers]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[Accounting]:
    """The admin's side: another process's accounting on the same database."""
    db = open_database(database_url)
    acc = Accounting(db, journal_dir=tmp_path / "cli-journal")
    try:
        yield acc
    finally:
        acc.close()
        db.dispose()


def _status(url: str, secret: str) -> int:
    return httpx.post(f"{url}/v1/messages", json=BODY, headers={"x-api-key": secret}).status_code


def test_a_key_revoked_elsewhere_is_refused_at_once_by_every_worker(
    workers: list[str], cli: Accounting
) -> None:
    secret, record = cli.keys.create("alice", "payments")
    kept, _ = cli.keys.create("bob", "payments")
    for url in workers:  # both workers now hold the keys in their caches
        assert _status(url, secret) == 200 and _status(url, kept) == 200
    cli.keys.revoke(record.id)
    for url in workers:
        assert eventually(lambda url=url: _status(url, secret) == 401)  # type: ignore[misc]
        assert _status(url, kept) == 200


def test_a_rotation_without_grace_applies_at_once(workers: list[str], cli: Accounting) -> None:
    secret, record = cli.keys.create("carol", "payments")
    assert _status(workers[0], secret) == 200
    new_secret, _ = cli.keys.rotate(record.id, timedelta(0))
    assert eventually(lambda: _status(workers[0], secret) == 401)
    assert _status(workers[0], new_secret) == 200
