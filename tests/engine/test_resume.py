"""SIGKILL of the worker mid-run, then resume: nothing completed is done twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestra.engine.agents import RosterAgents
from orchestra.engine.demo import scripted_stack
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import ScriptedModel, create_sample_repository
from tests.engine.helpers import branch_log, call_keys, report_of

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HAPPY_PATH_CALLS = 25
"""Model calls of an uninterrupted happy-path run (the scripted model's fixed script)."""


@pytest.mark.parametrize("kill_after", [4, 11])
def test_sigkill_mid_run_then_resume_repeats_no_completed_model_call(
    tmp_path: Path, pipeline_agents: RosterAgents, kill_after: int
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    home = tmp_path / "home"
    agents_dir = tmp_path / "agents"
    run_id = f"run-crash-{kill_after}"
    with FakeUpstream.start() as upstream:
        upstream.responder = ScriptedModel("happy")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.engine.worker",
                str(home),
                str(repo),
                upstream.base_url,
                run_id,
                str(agents_dir),
            ],
            cwd=ROOT,
            env={**os.environ, "ORCHESTRA_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while len(upstream.requests) < kill_after:
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker made too few model calls"
            time.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        if worker.stderr:
            worker.stderr.close()
        before = len(upstream.requests)

        with scripted_stack(home, upstream_url=upstream.base_url, agents=pipeline_agents) as stack:
            assert stack.runtime.services.runs.get(run_id).status == "running"
            # What `orchestra serve` does at startup: resume runs whose worker is gone.
            assert stack.runtime.resume_orphaned() == [run_id]
            row = stack.runtime.wait(run_id, timeout_s=300)
        requests = upstream.requests

    assert row.status == "succeeded", row.failure_reason
    keys = call_keys(requests)
    repeated = {k: n for k, n in keys.items() if n > 1}
    # Only calls that were in flight when the worker died may be made again (at most the
    # agents running at that moment); every completed call is replayed from its record.
    assert len(repeated) <= 2, repeated
    assert all(n == 2 for n in repeated.values())
    assert len(keys) == HAPPY_PATH_CALLS
    assert len(requests) == HAPPY_PATH_CALLS + len(repeated)
    assert before >= kill_after
    assert len(branch_log(repo, str(row.branch))) == 5
    assert report_of(row)["tests"]["green"]["failed"] == 0
