"""SIGKILL of the worker mid-run, then resume: nothing completed is done twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import ScriptedModel, create_sample_repository
from tests.engine.helpers import (
    assert_no_completed_call_repeated,
    branch_log,
    kill_after_calls,
    report_of,
    start_worker,
)

pytestmark = pytest.mark.slow


# An early kill (after 4 calls, in the red phase) is resumed by `orchestra serve` in
# test_serve_resume.py with the same checks; here a kill during green/review.
@pytest.mark.parametrize("kill_after", [11])
def test_sigkill_mid_run_then_resume_repeats_no_completed_model_call(
    tmp_path: Path, pipeline_agents: RosterAgents, kill_after: int
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    home = tmp_path / "home"
    agents_dir = tmp_path / "agents"
    run_id = f"run-crash-{kill_after}"
    with FakeUpstream.start() as upstream:
        upstream.responder = ScriptedModel("happy")
        worker = start_worker(home, repo, upstream.base_url, run_id, agents_dir)
        before = kill_after_calls(worker, lambda: len(upstream.requests), kill_after)

        with scripted_stack(home, upstream_url=upstream.base_url, agents=pipeline_agents) as stack:
            assert stack.runtime.services.runs.get(run_id).status == "running"
            # What `orchestra serve` does at startup: resume runs whose worker is gone.
            assert stack.runtime.resume_orphaned() == [run_id]
            row = stack.runtime.wait(run_id, timeout_s=300)
        requests = upstream.requests

    assert row.status == "succeeded", row.failure_reason
    assert_no_completed_call_repeated(requests)
    assert before >= kill_after
    assert len(branch_log(repo, str(row.branch))) == 5
    assert report_of(row)["tests"]["green"]["failed"] == 0
