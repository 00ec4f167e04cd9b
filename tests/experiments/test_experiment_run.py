"""A whole experiment at $0: a suite built from a fixture repository's history, two arms
whose models replay the tasks' commits (one arm's model leaves one task unsolved), k=2.

Slow: eight pipeline runs through the real engine, gateway and hidden-test judge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.demo import replay_arm
from orchestra.engine.agents import RosterAgents
from orchestra.experiments import (
    Arm,
    ExperimentSpec,
    read_results,
    run_experiment,
    suite_from_git,
)

pytestmark = pytest.mark.slow


def _opener(tmp_path: Path, agents: RosterAgents, weak_on: frozenset[str]):  # type: ignore[no-untyped-def]
    def open_arm(arm: Arm):  # type: ignore[no-untyped-def]
        unsolved = weak_on if arm.name == "hybrid" else frozenset()
        return replay_arm(
            arm,
            home=tmp_path,
            agents=agents,
            unsolved=unsolved,
            extra_yaml="engine: {green_iterations: 1}",
        )

    return open_arm


def test_paired_experiment_reports_intervals_and_says_inconclusive(
    history_repo: Path, tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    suite = suite_from_git(history_repo)
    suite.save(tmp_path / "suite.json")
    spec_file = tmp_path / "exp.yaml"
    spec_file.write_text(
        "name: hybrid-vs-claude\nsuite: suite.json\nreplicates: 2\n"
        "arms:\n  - {name: all-claude}\n  - {name: hybrid, overlay: {engine: {max_turns: 30}}}\n"
    )
    spec = ExperimentSpec.load(spec_file)
    results = tmp_path / "exp.results.jsonl"
    opener = _opener(tmp_path, pipeline_agents, weak_on=frozenset({"Add calc.sub"}))
    outcome = run_experiment(spec, suite, opener, results=results, workdir=tmp_path / "work")
    assert (outcome.ran, outcome.not_run) == (8, 0)
    runs = read_results(results)
    passed = {(m.arm, m.task, m.replicate): m.passed for m in runs}
    sub = next(t.id for t in suite.tasks if t.text == "Add calc.sub")
    assert [k for k, ok in passed.items() if not ok] == [
        ("hybrid", sub, 0),
        ("hybrid", sub, 1),
    ], [m.acceptance for m in runs]
    solved = next(m for m in runs if m.arm == "all-claude")
    assert solved.status == "succeeded" and solved.acceptance["counts"]["passed"] >= 1
    assert solved.cost_usd is not None and solved.cost_usd > 0  # priced from the ledger
    assert solved.latencies_ms and solved.wall_time_s is not None
    assert solved.coverage == 1.0

    # Resumed: every run is recorded, none runs again.
    again = run_experiment(spec, suite, opener, results=results, workdir=tmp_path / "work")
    assert (again.ran, again.skipped) == (0, 8)

    # Bounded by its budget: the first run spends more than $0.01, so no second starts.
    bounded = spec.model_copy(update={"budget_usd": 0.01})
    capped = run_experiment(
        bounded, suite, opener, results=tmp_path / "capped.jsonl", workdir=tmp_path / "work"
    )
    assert (capped.ran, capped.not_run) == (1, 7) and capped.spent_usd > 0.01

    result = CliRunner().invoke(app, ["experiment", "report", str(spec_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (comparison,) = data["comparisons"]
    assert comparison["decision"] == "inconclusive"
    assert comparison["pass_rates"] == {"all-claude": 1.0, "hybrid": 0.5}
    diff = comparison["differences"]["passed"]
    assert diff["mean"] == -0.5 and diff["low"] == -1.0 and diff["high"] == 0.0
    assert comparison["mcnemar"] == {"baseline_only": 2, "candidate_only": 0, "p_value": 0.5}
    assert comparison["pairs_needed"] > comparison["pairs"] == 4
    gates = {g["name"]: g["status"] for g in comparison["gates"]}
    assert gates["satisfaction"] == "unknown" and gates["bug_rate"] == "fail"
    markdown = (tmp_path / "exp.report.md").read_text()
    assert "**inconclusive**" in markdown or "**block**" in markdown
