"""``orchestra experiment run`` through the composition root: each arm's engine built from
``orchestra.yaml`` with the arm's overlay, on a scripted upstream replaying the task.

Slow: two pipeline runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.demo import scripted_config_yaml
from orchestra.experiments import suite_from_git
from orchestra.testing import CommitReplay, FakeUpstream

pytestmark = pytest.mark.slow


def test_experiment_run_builds_each_arm_from_its_overlay(
    history_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("ORCHESTRA_DATABASE_URL", raising=False)
    suite = suite_from_git(history_repo, limit=1)
    suite.save(tmp_path / "suite.json")
    spec = tmp_path / "exp.yaml"
    spec.write_text(
        "name: overlay\nsuite: suite.json\n"
        "arms:\n  - {name: cloud}\n"
        "  - {name: hybrid, overlay: {tiers: {haiku: {model: scripted-sonnet}}}}\n"
    )
    upstream = FakeUpstream.start()
    try:
        upstream.responder = CommitReplay.of(history_repo, suite.tasks[0].commit)
        config = tmp_path / "orchestra.yaml"
        config.write_text(
            scripted_config_yaml(upstream.base_url, "engine: {green_iterations: 1}\n")
        )
        result = CliRunner().invoke(app, ["experiment", "run", str(spec), "--config", str(config)])
    finally:
        upstream.stop()
    assert result.exit_code == 0, result.output
    assert ": 2 runs, spent $" in result.output and "2 of 2 runs recorded" in result.output
    lines = (tmp_path / "exp.results.jsonl").read_text().splitlines()
    runs = {m["arm"]: m for m in map(json.loads, lines)}
    assert runs["cloud"]["passed"] and runs["hybrid"]["passed"]
    assert runs["cloud"]["cost_usd"] > 0
    # The hybrid arm's haiku tier was served by the sonnet model (the overlay), the
    # baseline's by the haiku model.
    models = {}
    for arm, m in runs.items():
        report = json.loads((tmp_path / "state/runs" / m["run_id"] / "report.json").read_text())
        models[arm] = {a["model"] for a in report["agents"] if a["model"]}
    assert "scripted-haiku" in models["cloud"]
    assert "scripted-haiku" not in models["hybrid"] and "scripted-sonnet" in models["hybrid"]
    report = json.loads((tmp_path / "exp.report.json").read_text())
    assert report["decisions"] == {"hybrid": "inconclusive"}
