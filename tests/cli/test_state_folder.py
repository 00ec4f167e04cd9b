"""The state folder follows the project, not the folder a command runs in (issue 10 §6):
a command run from a subfolder opens the project's database and key pepper, and a
read-only command creates nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app

runner = CliRunner()

READ_ONLY = [
    ["keys", "list"],
    ["budgets", "list"],
    ["spend"],
    ["audit", "list"],
    ["audit", "verify"],
    ["audit", "anchor"],
    ["runs"],
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with its orchestra.yaml at the root and a deep subfolder; no
    ORCHESTRA_HOME or database URL in the environment."""
    monkeypatch.delenv("ORCHESTRA_HOME", raising=False)
    root = tmp_path / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "orchestra.yaml").write_text("gateway:\n  port: 8787\n")
    return root


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _keys(*args: str) -> list[str]:
    result = runner.invoke(app, ["keys", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    return [k["developer"] for k in json.loads(result.stdout)]


def test_a_command_in_a_subfolder_uses_the_projects_database_and_pepper(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert runner.invoke(app, ["keys", "create", "--developer", "alice"]).exit_code == 0
    monkeypatch.chdir(project / "src" / "pkg")
    assert _keys() == ["alice"]
    assert runner.invoke(app, ["keys", "create", "--developer", "bob"]).exit_code == 0
    monkeypatch.chdir(project)
    assert _keys() == ["alice", "bob"]
    assert sorted(project.rglob("orchestra.db")) == [project / ".orchestra" / "orchestra.db"]
    assert sorted(project.rglob("key-pepper")) == [project / ".orchestra" / "key-pepper"]
    assert not (project / "src" / ".orchestra").exists()


def test_without_a_configuration_file_the_nearest_state_folder_is_used(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "orchestra.yaml").unlink()
    monkeypatch.chdir(project)
    assert runner.invoke(app, ["keys", "create", "--developer", "alice"]).exit_code == 0
    monkeypatch.chdir(project / "src" / "pkg")
    assert _keys() == ["alice"]
    assert not (project / "src" / "pkg" / ".orchestra").exists()


def test_an_explicit_configuration_file_takes_its_state_folder_along(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = ["--config", str(project / "orchestra.yaml")]
    created = runner.invoke(app, ["keys", "create", "--developer", "alice", *config])
    assert created.exit_code == 0, created.output
    assert (project / ".orchestra" / "orchestra.db").is_file()
    assert _keys(*config) == ["alice"]
    assert _files(elsewhere) == set()


def test_orchestra_home_wins_over_the_configuration_file(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "state"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    monkeypatch.chdir(project / "src")
    assert runner.invoke(app, ["keys", "create", "--developer", "alice"]).exit_code == 0
    assert (home / "orchestra.db").is_file() and not (project / ".orchestra").exists()


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_creates_nothing(
    command: list[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "src" / "pkg")
    before = _files(project)
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    said = "".join(result.output.split())  # the terminal may wrap the long path anywhere
    assert f"noOrchestradatabaseat{project / '.orchestra' / 'orchestra.db'}" in said
    assert "ORCHESTRA_HOME" in said
    assert _files(project) == before


def test_showing_an_organisation_never_stored_creates_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "src")
    result = runner.invoke(app, ["org", "show"])
    assert result.exit_code == 2 and "no organisation stored yet" in result.output
    assert _files(project) == {"orchestra.yaml", "src", "src/pkg"}


def test_read_only_commands_on_an_existing_database_create_no_pepper_or_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    budget = ["budgets", "set", "b", "--scope", "team", "--subject", "t", "--cap", "5"]
    assert runner.invoke(app, budget).exit_code == 0
    before = _files(project)
    assert "key-pepper" not in " ".join(before)
    for command in [*READ_ONLY, ["secrets", "list"]]:
        result = runner.invoke(app, command)
        assert result.exit_code == 0, (command, result.output)
    assert _files(project) == before


@pytest.mark.parametrize("command", [["status", "r-1"], ["report", "r-1"]], ids=" ".join)
def test_asking_about_a_run_where_nothing_was_recorded_creates_nothing(
    command: list[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "src")
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert "noOrchestradatabaseat" in "".join(result.output.split())
    assert _files(project) == {"orchestra.yaml", "src", "src/pkg"}
