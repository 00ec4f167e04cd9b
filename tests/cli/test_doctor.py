"""`orchestra doctor` through the CLI: how tests run, the baseline, coverage, the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.testing.scripted import create_repository
from tests.repository.fixtures import (
    build_wheel,
    flat_repo,
    make_venv,
    pip_install,
    site_linking_pytest,
    src_layout_repo,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)


def test_flat_layout_is_ready(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    result = runner.invoke(app, ["doctor", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "passes at" in result.output and "1 tests; 1 passed" in result.output
    assert "coverage.py in the tests' environment" in result.output
    assert "-m coverage run -m pytest" in result.output
    assert "no model was called, $0 spent" in result.output
    assert "ready" in result.output


def test_src_layout_with_its_own_venv_is_ready_and_json_says_how(tmp_path: Path) -> None:
    repo = src_layout_repo(tmp_path / "mypkg")
    python = make_venv(repo / ".venv", with_pytest=site_linking_pytest(tmp_path / "site"))
    pip_install(python, build_wheel(tmp_path / "w", "shinydep", {"shinydep.py": "TWO = 2\n"}))
    result = runner.invoke(app, ["doctor", "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["environment"]["kind"] == "venv"
    assert data["environment"]["python_path"] == ["src", "."]
    assert data["baseline"]["tests"] == 1
    # coverage.py is not installed in that venv: said, with the fix.
    assert data["coverage"]["tool"] is None
    assert any("pip install coverage" in a for a in data["advice"])
    # The doctor leaves no worktree behind.
    from tests.repository.fixtures import git

    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_a_uv_environment_is_told_the_uv_way_to_add_coverage(tmp_path: Path) -> None:
    """A virtualenv uv made has no pip: `python -m pip install coverage` would fail there
    (found on hynek/stamina)."""
    repo = src_layout_repo(tmp_path / "mypkg")
    python = make_venv(repo / ".venv", with_pytest=site_linking_pytest(tmp_path / "site"))
    pip_install(python, build_wheel(tmp_path / "w", "shinydep", {"shinydep.py": "TWO = 2\n"}))
    (repo / "uv.lock").write_text("version = 1\n")
    from tests.repository.fixtures import commit_files

    commit_files(repo, {"uv.lock": "version = 1\n"}, "lock")
    result = runner.invoke(app, ["doctor", "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["environment"]["kind"] == "uv"
    advice = [a for a in data["advice"] if "coverage.py is not installed" in a]
    assert advice and "uv sync" in advice[0] and "-m pip" not in advice[0]


def test_broken_environment_says_what_and_how_to_fix(tmp_path: Path) -> None:
    repo = flat_repo(tmp_path / "flat")
    make_venv(repo / ".venv", with_pytest=None)
    result = runner.invoke(app, ["doctor", "--repo", str(repo)])
    assert result.exit_code == 1, result.output
    assert "No module named pytest" in result.output
    assert "-m pip install pytest" in result.output
    assert "not ready" in result.output
    assert "$0 spent" in result.output


def test_failing_baseline_and_the_option_to_record_it(tmp_path: Path) -> None:
    repo = create_repository(
        tmp_path / "r",
        {"tests/test_a.py": "def test_ok():\n    pass\n\n\ndef test_bad():\n    assert 0\n"},
    )
    result = runner.invoke(app, ["doctor", "--repo", str(repo), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert "already fail" in data["failure"]["message"]
    allowed = runner.invoke(
        app, ["doctor", "--repo", str(repo), "--json", "--allow-preexisting-failures"]
    )
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output)["baseline"]["preexisting_failures"] == [
        "tests/test_a.py::test_bad"
    ]


def test_not_a_repository(tmp_path: Path) -> None:
    result = runner.invoke(app, ["doctor", "--repo", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a git repository" in result.output
