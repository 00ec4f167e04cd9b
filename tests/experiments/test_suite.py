"""Suites from a repository's history, through ``orchestra suite from-git``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.experiments import Suite
from orchestra.tools import git
from tests.experiments.conftest import TEST_MUL, TEST_SUB


def test_from_git_makes_a_task_of_each_commit_changing_tests_and_source(
    history_repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "suite.json"
    result = CliRunner().invoke(app, ["suite", "from-git", str(history_repo), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 tasks" in result.output
    suite = Suite.load(out)
    assert [t.text for t in suite.tasks] == ["Add calc.mul", "Add calc.sub"]
    mul, sub = suite.tasks
    assert mul.hidden_tests == {"tests/test_mul.py": TEST_MUL}
    assert sub.hidden_tests == {"tests/test_sub.py": TEST_SUB}
    assert mul.sources == ["calc.py"] and mul.hidden_test_files == ["tests/test_mul.py"]
    assert mul.base_commit == git(history_repo, "rev-parse", "HEAD~3").strip()
    assert sub.base_commit == mul.commit
    assert json.loads(out.read_text())["version"] == 1


def test_limit_keeps_the_newest_tasks(history_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    args = ["suite", "from-git", str(history_repo), "--out", str(out), "--limit", "1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert [t.text for t in Suite.load(out).tasks] == ["Add calc.sub"]


def test_a_history_without_tasks_is_a_users_error(tmp_path: Path) -> None:
    from orchestra.testing.scripted import create_repository

    repo = create_repository(tmp_path / "r", {"a.py": "A = 1\n"})
    result = CliRunner().invoke(app, ["suite", "from-git", str(repo), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "changes both tests and implementation" in result.output
    result = CliRunner().invoke(app, ["suite", "from-git", str(tmp_path), "--out", "x"])
    assert result.exit_code == 2 and "not a git repository" in result.output


def test_the_checkout_holds_the_base_tree_and_no_history(
    history_repo: Path, tmp_path: Path
) -> None:
    from orchestra.experiments import checkout_base, suite_from_git

    task = suite_from_git(history_repo).tasks[1]
    checkout = checkout_base(task, tmp_path / "checkout")
    assert (checkout / "tests/test_mul.py").read_text() == TEST_MUL
    assert not (checkout / "tests/test_sub.py").exists()  # the hidden test is not there
    assert git(checkout, "rev-list", "--count", "--all").strip() == "1"
