"""A recorded experiment read back (`load_recorded`): the status its records say, the
runs recorded of planned, each arm's figures ("unknown" where no run measured them), and
the report is the CLI's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestra.experiments import (
    RunMeasurement,
    Suite,
    SuiteInvalid,
    Task,
    append_result,
    arm_summary,
    load_recorded,
    render_markdown,
    results_path,
)


def _experiment(folder: Path, budget: float | None = None) -> Path:
    tasks = [Task(f"t{i}", str(folder), "a" * 40, "b" * 40, f"task {i}") for i in range(2)]
    Suite("s", tasks).save(folder / "suite.json")
    spec = {"name": "e", "suite": "suite.json", "arms": [{"name": "a"}, {"name": "b"}]}
    if budget is not None:
        spec["budget_usd"] = budget
    path = folder / "e.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _run(task: str, arm: str, cost: float | None, passed: bool = True) -> RunMeasurement:
    return RunMeasurement(task, arm, 0, f"r-{task}-{arm}", "succeeded", passed, cost_usd=cost)


def test_status_follows_the_records(tmp_path: Path) -> None:
    path = _experiment(tmp_path, budget=1.0)
    assert load_recorded(path).status == "not started"
    results = results_path(path)
    assert results == tmp_path / "e.results.jsonl"
    append_result(results, _run("t0", "a", 0.4))
    rec = load_recorded(path)
    assert (rec.status, rec.recorded, rec.planned) == ("unfinished", 1, 4)
    append_result(results, _run("t0", "a", 0.4))  # a duplicate line counts once
    append_result(results, _run("t1", "a", 0.7))
    rec = load_recorded(path)
    assert (rec.status, rec.recorded, rec.report["not_run"]) == ("stopped at budget", 2, 2)
    append_result(results, _run("t0", "b", 0.0))
    append_result(results, _run("t1", "b", 0.0, passed=False))
    rec = load_recorded(path)
    assert (rec.status, rec.recorded) == ("complete", 4)
    assert rec.report["decisions"] == {"b": "inconclusive"}


def test_an_arm_without_measurements_reads_unknown(tmp_path: Path) -> None:
    empty = arm_summary([])
    assert empty["runs"] == 0 and empty["pass_rate"] is None and empty["cost_usd"] is None
    figures = arm_summary([_run("t0", "a", None), _run("t1", "a", 0.5, passed=False)])
    assert figures["pass_rate"] == 0.5
    assert figures["cost_usd"] == 0.5 and figures["cost_usd_per_run"] == 0.5
    assert figures["coverage_mean"] is None and figures["model_latency_ms_mean"] is None
    path = _experiment(tmp_path)
    append_result(results_path(path), _run("t0", "a", None))
    text = render_markdown(load_recorded(path).report)
    assert "| a | 1 | 1.000 | unknown | unknown | unknown |" in text
    assert "| b | 0 | unknown | unknown | unknown | unknown |" in text


def test_an_unreadable_experiment_says_so(tmp_path: Path) -> None:
    with pytest.raises(SuiteInvalid, match="cannot read experiment"):
        load_recorded(tmp_path / "missing.yaml")
