"""Decisions and reports from recorded runs, through ``orchestra experiment report``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.experiments import ExperimentSpec, RunMeasurement, Suite, Task, compare

SPEC = (
    "name: e\nsuite: suite.json\nreplicates: {k}\n"
    "arms: [{{name: cloud}}, {{name: hybrid}}]\n"
    "gates: {{satisfaction: {sat}}}\n"
)


def _run(task: str, arm: str, r: int, passed: bool, latency_ms: float = 800.0) -> RunMeasurement:
    return RunMeasurement(
        task=task,
        arm=arm,
        replicate=r,
        run_id=f"{arm}-{task}-{r}",
        status="succeeded" if passed else "failed",
        passed=passed,
        coverage=0.95,
        review_findings=1,
        security_findings=0,
        cost_usd=0.02 if arm == "cloud" else 0.005,
        wall_time_s=30.0,
        latencies_ms=[latency_ms, latency_ms],
    )


def _spec(k: int = 1, sat: float | None = 0.9) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "e",
            "suite": "suite.json",
            "replicates": k,
            "arms": [{"name": "cloud"}, {"name": "hybrid"}],
            "gates": {"satisfaction": sat},
        }
    )


def test_many_equal_pairs_with_every_gate_met_ship() -> None:
    runs = [_run(f"t{i}", arm, 0, i % 10 != 0) for i in range(300) for arm in ("cloud", "hybrid")]
    c = compare(_spec(), runs, "hybrid")
    assert c.decision == "ship", c.reasons
    assert c.pairs == 300 and c.pairs_needed <= 300
    cost = c.differences["cost_usd"]
    assert cost is not None and cost.mean == -0.015


def test_a_clear_drop_blocks_and_an_unknown_gate_never_ships() -> None:
    runs = [_run(f"t{i}", "cloud", 0, True) for i in range(60)]
    runs += [_run(f"t{i}", "hybrid", 0, i % 2 == 0) for i in range(60)]
    c = compare(_spec(), runs, "hybrid")
    assert c.decision == "block"
    assert c.mcnemar.baseline_only == 30 and c.mcnemar.p_value < 1e-6
    equal = [_run(f"t{i}", arm, 0, True) for i in range(300) for arm in ("cloud", "hybrid")]
    unknown = compare(_spec(sat=None), equal, "hybrid")
    assert unknown.decision == "inconclusive"
    assert "gate unknown: satisfaction" in unknown.reasons


def test_slow_calls_fail_the_response_time_gate() -> None:
    runs = [_run(f"t{i}", "cloud", 0, True) for i in range(300)]
    runs += [_run(f"t{i}", "hybrid", 0, True, latency_ms=6000) for i in range(300)]
    c = compare(_spec(), runs, "hybrid")
    gate = next(g for g in c.gates if g.name == "response_time")
    assert (gate.status, gate.measured) == ("fail", 0.0)
    assert c.decision == "block"


def test_report_command_writes_markdown_and_json(tmp_path: Path) -> None:
    tasks = [Task(f"t{i}", str(tmp_path), "b", "c", f"task {i}") for i in range(3)]
    Suite("s", tasks).save(tmp_path / "suite.json")
    spec_file = tmp_path / "e.yaml"
    spec_file.write_text(SPEC.format(k=2, sat="null"))
    runs = [_run(t.id, arm, r, True) for t in tasks for arm in ("cloud", "hybrid") for r in (0, 1)]
    runs = runs[:-1]  # one run not recorded yet
    lines = "".join(json.dumps(m.to_json()) + "\n" for m in runs)
    (tmp_path / "e.results.jsonl").write_text(lines)
    result = CliRunner().invoke(app, ["experiment", "report", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "## hybrid against cloud: **inconclusive**" in result.output
    assert "1 runs not run" in result.output
    assert "Connor (1987)" in result.output and "McNemar exact test" in result.output
    data = json.loads((tmp_path / "e.report.json").read_text())
    assert data["decisions"] == {"hybrid": "inconclusive"}
    assert data["comparisons"][0]["pairs"] == 5


def test_report_without_runs_or_with_a_bad_file_is_a_users_error(tmp_path: Path) -> None:
    Suite("s", []).save(tmp_path / "suite.json")
    spec_file = tmp_path / "e.yaml"
    spec_file.write_text(SPEC.format(k=1, sat="null"))
    result = CliRunner().invoke(app, ["experiment", "report", str(spec_file)])
    assert result.exit_code == 2 and "no run recorded" in result.output
    spec_file.write_text("name: e\nsuite: suite.json\narms: [{name: only}]\n")
    result = CliRunner().invoke(app, ["experiment", "report", str(spec_file)])
    assert result.exit_code == 2 and "cannot read experiment" in result.output
