"""Runs through the REST API with ``engine.workers.distribute`` (PostgreSQL): ``POST
/api/v1/runs`` records the run, charged to the caller, and queues it; a worker of the
shared run queue takes it and finishes it, still charged to the caller. On SQLite the
server refuses to queue (503)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestra.app import Orchestra
from orchestra.config import load_config
from orchestra.demo import scripted_config_yaml, scripted_stack
from orchestra.engine import FINAL_STATUSES
from orchestra.engine.gateway_link import serve_on_loopback
from orchestra.server import build_app, hosting_engine
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository
from tests.conftest import POSTGRES_ENV, MigratedTemplates, scratch_postgres_database

pytestmark = pytest.mark.slow

ORG = """
organisation:
  name: acme
  units: [{name: squad-a, kind: squad}]
  developers:
    - {name: root, role: admin}
    - {name: dev, role: developer, unit: squad-a}
server:
  repositories: {sample: sample}
engine: {developer: root, workers: {distribute: true, heartbeat_s: 0.5, timeout_s: 5}}
"""


@contextmanager
def _serve(tmp_path: Path, database_url: str, upstream: FakeUpstream) -> Iterator[Any]:
    config_path = tmp_path / "orchestra.yaml"
    config_path.write_text(scripted_config_yaml(upstream.base_url, ORG))
    config = load_config(config_path)
    app = build_app(config, database_url=database_url, config_path=config_path)
    services = Orchestra(
        database_url=database_url,
        home=tmp_path / "home",
        config_given=config,
        config_path=config_path,
    )
    accounting = app.gateway.accountant.accounting  # type: ignore[attr-defined]
    key = accounting.keys.create("dev", "squad-a")[0]
    with serve_on_loopback(hosting_engine(app, services), accounting) as gateway:
        yield gateway.base_url, {"authorization": f"Bearer {key}"}, accounting


def test_a_queued_api_run_is_taken_by_a_worker_and_charged_to_its_caller(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrated_templates: MigratedTemplates,
) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORCHESTRA_DEVELOPER", raising=False)
    create_sample_repository(tmp_path / "sample")
    with (
        scratch_postgres_database(url, migrated_templates.postgres_database(url)) as scratch,
        FakeUpstream.start() as upstream,
    ):
        upstream.responder = ScriptedModel("happy")
        # The worker (its own gateway and accounting on the same database) creates DBOS's
        # tables and serves the run queue; the server only queues.
        with (
            scripted_stack(
                tmp_path / "home",
                database_url=scratch,
                upstream_url=upstream.base_url,
                extra_yaml=ORG,
                take_queued_runs=True,
            ) as worker,
            _serve(tmp_path, scratch, upstream) as served,
        ):
            base, headers, accounting = served
            body = {"task": SAMPLE_TASK, "repository": "sample", "budget_usd": 2.0}
            started = httpx.post(f"{base}/api/v1/runs", json=body, headers=headers, timeout=60)
            assert started.status_code == 201, started.text
            # The answer shows the run as read after it was queued: a worker may already
            # have taken it (seen on a loaded machine).
            assert started.json()["status"] in ("queued", "running")
            run_id = started.json()["id"]
            run = _wait(base, headers, run_id)
            row = worker.runtime.services.runs.get(run_id)
            keys = accounting.keys.run_keys(run_id)
    assert run["status"] == "succeeded", run["failure_reason"]
    assert row.worker_pid == os.getpid()  # taken by the worker (the server only queued it)
    assert len(keys) == 2  # the server's (charging the caller), then the worker's
    assert {(k.developer, k.team) for k in keys} == {("dev", "squad-a")}
    assert all(k.revoked_at is not None for k in keys)


def _wait(base: str, headers: dict[str, str], run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 900  # a guard against a hang, not a timing target
    while True:
        got = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=headers, timeout=60)
        run: dict[str, Any] = got.json()["run"]
        if run["status"] in FINAL_STATUSES:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


def test_the_server_refuses_to_queue_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORCHESTRA_DEVELOPER", raising=False)
    create_sample_repository(tmp_path / "sample")
    with (
        FakeUpstream.start() as upstream,
        _serve(tmp_path, f"sqlite:///{tmp_path / 'o.db'}", upstream) as served,
    ):
        base, headers, _accounting = served
        body = {"task": SAMPLE_TASK, "repository": "sample"}
        refused = httpx.post(f"{base}/api/v1/runs", json=body, headers=headers, timeout=60)
    assert refused.status_code == 503, refused.text
    assert "needs PostgreSQL" in refused.json()["error"]["message"]
