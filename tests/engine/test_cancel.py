"""Cancelling a run stops its workflow and agents; the branch keeps what was done."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestra.engine.agents import RosterAgents
from orchestra.engine.demo import scripted_stack
from orchestra.errors import EngineError
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository

pytestmark = pytest.mark.slow


def test_cancel_stops_a_running_run(tmp_path: Path, pipeline_agents: RosterAgents) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(tmp_path / "home", agents=pipeline_agents, latency_s=0.3) as stack:
        runtime = stack.runtime
        run_id = runtime.start_run(SAMPLE_TASK, repo)
        deadline = time.monotonic() + 120
        while runtime.services.runs.get(run_id).phase != "red":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runtime.cancel(run_id)
        row = runtime.wait(run_id, timeout_s=60)
        assert stack.upstream is not None
        calls_after_cancel = len(stack.upstream.requests)
        time.sleep(1.5)
        assert len(stack.upstream.requests) <= calls_after_cancel + 1
        with pytest.raises(EngineError, match="already ended"):
            runtime.cancel(run_id)
    assert row.status == "cancelled"
    assert row.failure_reason == "cancelled by user"
    steps = {s.phase for s in runtime.services.runs.steps(run_id)}
    assert "green" not in steps
