"""An experiment as a DBOS workflow (real DBOS on SQLite, runs faked in-process): a step
that raises leaves the workflow in ERROR; resuming it runs only what was not recorded;
the budget stops it with a clear message."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID

from orchestra.experiments import (
    Arm,
    ExperimentError,
    ExperimentSpec,
    Suite,
    Task,
    bind_runner,
    experiment_host,
    experiment_plan,
    list_experiments,
    read_results,
    resume_experiment,
    start_experiment,
    unfinished_experiment,
)
from orchestra.experiments.durable import ExperimentHost, experiment_workflow


class Runs:
    """A fake run: records each call; raises once on the call numbered ``fail_on``."""

    def __init__(self, cost: float = 0.0, fail_on: int | None = None) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.cost = cost
        self.fail_on = fail_on

    def __call__(self, plan: dict[str, Any], task: str, arm: str, replicate: int) -> dict[str, Any]:
        self.calls.append((task, arm, replicate))
        if len(self.calls) == self.fail_on:
            raise RuntimeError("the machine went away")
        return {
            "task": task,
            "arm": arm,
            "replicate": replicate,
            "run_id": f"run-{len(self.calls)}",
            "status": "succeeded",
            "passed": True,
            "cost_usd": self.cost,
        }


@pytest.fixture
def host(tmp_path: Path) -> Iterator[ExperimentHost]:
    with experiment_host(f"sqlite:///{tmp_path / 'dbos.sqlite'}") as launched:
        yield launched


def _setup(tmp_path: Path, budget: float | None = None) -> tuple[ExperimentSpec, Suite]:
    tasks = [Task(f"t{i}", str(tmp_path), "base", f"c{i}", f"task {i}") for i in (1, 2)]
    spec = ExperimentSpec(
        name="durable",
        suite="suite.json",
        arms=[Arm(name="cloud"), Arm(name="hybrid")],
        budget_usd=budget,
    )
    return spec, Suite("s", tasks)


def _keys(results: Path) -> list[tuple[str, str, int]]:
    return [(m.task, m.arm, m.replicate) for m in read_results(results)]


def test_a_step_that_raised_resumes_without_running_finished_runs(
    tmp_path: Path, host: ExperimentHost
) -> None:
    spec, suite = _setup(tmp_path)
    results = tmp_path / "exp.results.jsonl"
    plan = experiment_plan(spec, suite, experiment=tmp_path / "exp.yaml", results=results)
    assert len(plan["runs"]) == 4
    runs = Runs(fail_on=3)
    bind_runner(runs)
    with pytest.raises(RuntimeError, match="went away"):
        start_experiment(spec.name, plan)
    assert len(runs.calls) == 3 and len(_keys(results)) == 2

    (listed,) = list_experiments("durable")
    assert listed["status"] == "ERROR"
    workflow_id = unfinished_experiment("durable")
    assert workflow_id == listed["id"]

    outcome = resume_experiment(workflow_id, host)
    # Runs 1 and 2 replayed from DBOS's records; the failed third and the fourth ran.
    assert runs.calls[3:] == [runs.calls[2], ("t2", "hybrid", 0)]
    assert (outcome.ran, outcome.not_run) == (4, 0)
    assert outcome.workflow_id == f"{workflow_id}~2"
    keys = _keys(results)
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 4
    assert unfinished_experiment("durable") is None

    # A finished experiment resumed again runs nothing.
    again = resume_experiment(workflow_id, host)
    assert again.ran == 4 and len(runs.calls) == 5


def test_a_run_recorded_before_the_crash_is_not_run_again(
    tmp_path: Path, host: ExperimentHost
) -> None:
    spec, suite = _setup(tmp_path)
    results = tmp_path / "exp.results.jsonl"
    plan = experiment_plan(spec, suite, experiment=tmp_path / "exp.yaml", results=results)
    # The first run was written to the results file, but DBOS never recorded its step.
    first = Runs()(plan, "t1", "cloud", 0)
    results.write_text(json.dumps(first) + "\n")
    runs = Runs()
    bind_runner(runs)
    outcome = start_experiment(spec.name, plan)
    assert outcome.ran == 4 and ("t1", "cloud", 0) not in runs.calls and len(runs.calls) == 3


def test_the_budget_stops_the_experiment_with_a_clear_message(
    tmp_path: Path, host: ExperimentHost
) -> None:
    spec, suite = _setup(tmp_path, budget=0.05)
    results = tmp_path / "exp.results.jsonl"
    runs = Runs(cost=0.03)
    bind_runner(runs)
    plan = experiment_plan(spec, suite, experiment=tmp_path / "exp.yaml", results=results)
    outcome = start_experiment(spec.name, plan)
    assert (outcome.ran, outcome.not_run, len(runs.calls)) == (2, 2, 2)
    assert outcome.stopped_by_budget
    assert "stopped at its budget ($0.05): 2 runs not run" in outcome.message()

    # Run again (a new plan from the results file): the spent cost counts, nothing runs.
    plan = experiment_plan(spec, suite, experiment=tmp_path / "exp.yaml", results=results)
    assert plan["spent_usd"] == pytest.approx(0.06) and len(plan["runs"]) == 2
    outcome = start_experiment(spec.name, plan)
    assert (outcome.ran, outcome.not_run, len(runs.calls)) == (0, 2, 2)


def test_only_experiment_workflows_resume(host: ExperimentHost) -> None:
    with pytest.raises(ExperimentError, match="not an experiment workflow"):
        resume_experiment("run-123", host)
    with pytest.raises(ExperimentError, match="no experiment workflow"):
        resume_experiment("experiment/nope/00000000", host)


def test_a_workflow_whose_process_lives_is_not_resumed(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "120"])
    release = threading.Event()

    def blocked(plan: dict[str, Any], task: str, arm: str, replicate: int) -> dict[str, Any]:
        release.wait(60)
        return Runs()(plan, task, arm, replicate)

    try:
        # Launched as if by the other (live) process: its workflows are that process's.
        with experiment_host(f"sqlite:///{tmp_path / 'dbos.sqlite'}", pid=other.pid) as host:
            spec, suite = _setup(tmp_path)
            plan = experiment_plan(
                spec, suite, experiment=tmp_path / "e.yaml", results=tmp_path / "r.jsonl"
            )
            bind_runner(blocked)
            with SetWorkflowID("experiment/durable/live0001"):
                handle = DBOS.start_workflow(experiment_workflow, plan)
            try:
                with pytest.raises(ExperimentError, match=f"still running in process {other.pid}"):
                    resume_experiment("experiment/durable/live0001", host)
            finally:
                release.set()
                handle.get_result()
    finally:
        other.kill()
        other.wait()
