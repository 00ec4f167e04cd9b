"""A restart of ``orchestra serve`` continues a run whose worker was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestra.demo import scripted_config_yaml
from orchestra.engine.runs import FINAL_STATUSES, RunStore
from orchestra.store import open_database
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import ScriptedModel, create_sample_repository
from tests.engine.helpers import (
    ROOT,
    assert_no_completed_call_repeated,
    branch_log,
    kill_after_calls,
    report_of,
    start_worker,
)

pytestmark = pytest.mark.slow


def _serve(config: Path, home: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRA_DATABASE_URL"}
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [
                str(Path(sys.executable).with_name("orchestra")),
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            cwd=ROOT,
            env={**env, "ORCHESTRA_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def test_restarted_serve_finishes_a_killed_run_without_repeating_calls(
    tmp_path: Path, pipeline_agents: object
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    home = tmp_path / "home"
    run_id = "run-serve-resume"
    with FakeUpstream.start() as upstream:
        upstream.responder = ScriptedModel("happy")
        config = tmp_path / "orchestra.yaml"
        config.write_text(scripted_config_yaml(upstream.base_url))
        worker = start_worker(home, repo, upstream.base_url, run_id, tmp_path / "agents")
        kill_after_calls(worker, lambda: len(upstream.requests), 4)

        database = open_database(f"sqlite:///{home / 'orchestra.db'}")
        runs = RunStore(database)
        assert runs.get(run_id).status == "running"
        log_path = tmp_path / "serve.log"
        server = _serve(config, home, log_path)
        try:
            deadline = time.monotonic() + 300  # a guard against a hang, not a timing target
            while (row := runs.get(run_id)).status not in FINAL_STATUSES:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
            database.dispose()
        requests = upstream.requests

    log = log_path.read_text()
    assert server.returncode == 0, log
    assert f"resumed interrupted run(s) in the background: {run_id}" in log
    assert "Traceback" not in log
    assert row.status == "succeeded", row.failure_reason
    assert_no_completed_call_repeated(requests)
    assert len(branch_log(repo, str(row.branch))) == 5
    report = report_of(row)
    assert report["tests"]["green"]["failed"] == 0
    assert report["cost_source"] == "gateway ledger"
