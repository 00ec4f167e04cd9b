"""``orchestra experiment run`` killed with SIGKILL after its first run, then
``orchestra experiment resume ID``: the finished run is not made again, the rest is.

Slow: two replayed pipeline runs, each in its own ``run-one`` process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestra.experiments import suite_from_git

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from orchestra.cli import main; main()"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRA_DATABASE_URL"}
    env["ORCHESTRA_HOME"] = str(tmp_path / "state")
    return env


def _wait_for_lines(path: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        assert proc.poll() is None, "the experiment ended before it was killed"
        time.sleep(0.5)
    raise AssertionError(f"{path} never had {count} lines")


def test_killed_experiment_resumes_without_running_finished_runs(
    history_repo: Path, tmp_path: Path
) -> None:
    suite = suite_from_git(history_repo, limit=1)
    suite.save(tmp_path / "suite.json")
    spec = tmp_path / "exp.yaml"
    spec.write_text("name: killed\nsuite: suite.json\narms: [{name: cloud}, {name: hybrid}]\n")
    results = tmp_path / "exp.results.jsonl"
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [*CLI, "experiment", "run", str(spec), "--replay"], env=env, start_new_session=True
    )
    try:
        _wait_for_lines(results, 1, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the experiment and the run it was making
        proc.wait()
    (first,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert first["arm"] == "cloud"

    listed = subprocess.run(
        [*CLI, "experiment", "list", "killed", "--json"], env=env, capture_output=True, check=True
    )
    (workflow,) = json.loads(listed.stdout)
    assert workflow["status"] == "PENDING"

    resumed = subprocess.run(
        [*CLI, "experiment", "resume", workflow["id"]], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "2 of 2 runs recorded" in resumed.stdout
    runs = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(m["arm"], m["passed"]) for m in runs] == [("cloud", True), ("hybrid", True)]
    assert runs[0] == first  # recorded once, not run again
    # The cloud arm's engine made exactly one run: the finished one was replayed from
    # the workflow's records.
    cloud_runs = list((tmp_path / "state/experiments/killed/replay/arm-cloud/runs").iterdir())
    assert [p.name for p in cloud_runs] == [first["run_id"]]
    assert (tmp_path / "exp.report.json").is_file()
