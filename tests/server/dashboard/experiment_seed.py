"""A recorded experiment for the dashboard's tests, built with the experiments package's
own recording functions (a suite file, an experiment file, ``append_result``), no run
made: three tasks, k = 2, arms ``all-claude`` (the baseline) and ``hybrid``; the hybrid
arm's coverage is not measured (unknown), its description is HTML, and one stray line of
the results file names an arm in HTML (the file is data; the experiment file would refuse
such a name)."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestra.experiments import RunMeasurement, Suite, Task, append_result

EVIL_ARM = "<img src=x onerror=window.__pwned=3>"
"""An arm name in the results file (a hand-edited or renamed arm's line)."""
EVIL_DESCRIPTION = "<script>window.__pwned=4</script> routine tiers local"
NAME = "hybrid-vs-claude"


def _run(task: str, arm: str, replicate: int, passed: bool) -> RunMeasurement:
    hybrid = arm != "all-claude"
    return RunMeasurement(
        task=task,
        arm=arm,
        replicate=replicate,
        run_id=f"run-{task}-{arm[:6]}-{replicate}",
        status="succeeded" if passed else "failed",
        passed=passed,
        coverage=None if hybrid else 0.92,
        review_findings=1 if hybrid else 0,
        security_findings=0,
        cost_usd=0.0 if hybrid else 0.25 + 0.01 * replicate,
        wall_time_s=120.0 + 10 * replicate,
        latencies_ms=[2500.0, 6100.0] if hybrid else [1800.0, 2200.0],
    )


def seed_experiments(folder: Path) -> list[str]:
    """Write the experiment (and a second one not started yet) under ``folder``; the
    files ``rollout.experiment_files`` lists (relative to ``folder``), a missing one
    included."""
    tasks = [Task(f"task{i}", str(folder), "a" * 40, "b" * 40, f"task {i}") for i in range(3)]
    Suite("seed", tasks).save(folder / "suite.json")
    arms = [
        {"name": "all-claude"},
        {"name": "hybrid", "description": EVIL_DESCRIPTION},
    ]
    spec = {"name": NAME, "suite": "suite.json", "replicates": 2, "budget_usd": 5, "arms": arms}
    (folder / "hybrid.yaml").write_text(yaml.safe_dump(spec))
    waiting = {**spec, "name": "not-yet"}
    (folder / "waiting.yaml").write_text(yaml.safe_dump(waiting))
    results = folder / "hybrid.results.jsonl"
    outcomes = {"all-claude": [True, True, True, True, False, True]}
    outcomes["hybrid"] = [True, False, True, True, False, False]
    for arm, passed in outcomes.items():
        for i, ok in enumerate(passed):
            append_result(results, _run(f"task{i // 2}", arm, i % 2, ok))
    append_result(results, _run("task0", EVIL_ARM, 0, True))
    return ["hybrid.yaml", "waiting.yaml", "missing.yaml"]
