"""``orchestra worker`` and ``orchestra workers`` on SQLite say it is one process; on
PostgreSQL ``workers`` lists the registry (processes: tests/engine/test_workers.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.engine import WorkerRegistry
from orchestra.store import open_database
from tests.conftest import POSTGRES_ENV, MigratedTemplates, scratch_postgres_database

runner = CliRunner()


def test_worker_refuses_sqlite_and_workers_says_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORCHESTRA_DATABASE_URL", raising=False)
    refused = runner.invoke(app, ["worker"])
    assert refused.exit_code == 2
    assert "needs PostgreSQL" in " ".join(refused.output.split())
    open_database(f"sqlite:///{tmp_path / 'home' / 'orchestra.db'}").dispose()
    listed = runner.invoke(app, ["workers"])
    assert listed.exit_code == 0, listed.output
    assert "SQLite: the engine runs in one process" in " ".join(listed.output.split())


@pytest.fixture
def pg_url(migrated_templates: MigratedTemplates) -> Iterator[str]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    with scratch_postgres_database(url, migrated_templates.postgres_database(url)) as scratch:
        yield scratch


@pytest.mark.postgres
def test_workers_lists_the_registry_on_postgresql(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = open_database(pg_url)
    registry = WorkerRegistry(database, timeout_s=30)
    registry.acquire("w-live", "host-a", 11)
    registry.acquire("w-gone", "host-b", 22)
    registry.set_state("w-gone", "stopped")
    database.dispose()
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", pg_url)
    result = runner.invoke(app, ["workers", "--json"])
    assert result.exit_code == 0, result.output
    rows = {w["executor_id"]: w for w in json.loads(result.output)}
    assert (rows["w-live"]["state"], rows["w-live"]["host"], rows["w-live"]["pid"]) == (
        "running",
        "host-a",
        11,
    )
    assert rows["w-gone"]["state"] == "stopped"
    assert rows["w-live"]["heartbeat_age_s"] < 30
