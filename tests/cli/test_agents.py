"""`orchestra agents ...` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestra.cli.app import app
from tests.roster.agentfiles import write_agent

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no orchestra.yaml: the built-in roster only


def test_list_filters_and_json() -> None:
    result = runner.invoke(app, ["agents", "list", "--json"])
    assert result.exit_code == 0, result.output
    agents = json.loads(result.output)
    assert len(agents) == 119
    python = next(a for a in agents if a["name"] == "python-developer")
    assert python["tier"] == "haiku" and "edit_file" in python["engine_tools"]
    opus = json.loads(runner.invoke(app, ["agents", "list", "--tier", "opus", "--json"]).output)
    assert [a["name"] for a in opus] == ["chief-architect"]
    languages = runner.invoke(app, ["agents", "list", "--category", "languages"])
    assert languages.exit_code == 0
    assert "go-developer" in languages.output and "chief-architect" not in languages.output
    assert "1 opus / 37 sonnet / 81 haiku" in languages.output


def test_list_shows_tiers_after_configuration_overrides(tmp_path: Path) -> None:
    (tmp_path / "orchestra.yaml").write_text(
        "roster:\n  tier_overrides:\n    agents: {python-developer: opus}\n"
        "    categories: {security: opus}\n"
    )
    result = runner.invoke(app, ["agents", "list", "--tier", "opus", "--json"])
    names = {a["name"] for a in json.loads(result.output)}
    assert {"chief-architect", "python-developer", "security-auditor"} <= names
    assert "go-developer" not in names


def test_show_prints_front_matter_and_prompt_and_suggests_close_names() -> None:
    shown = runner.invoke(app, ["agents", "show", "go-developer"])
    assert shown.exit_code == 0
    assert "## How you work" in shown.output and "tools: " in shown.output
    data = json.loads(runner.invoke(app, ["agents", "show", "go-developer", "--json"]).output)
    assert data["prompt"].startswith("## Role")
    missing = runner.invoke(app, ["agents", "show", "go-develper"])
    assert missing.exit_code == 2
    assert "no agent named 'go-develper'" in missing.output
    assert "did you mean go-developer" in missing.output


def test_validate_builtin_prints_the_split() -> None:
    result = runner.invoke(app, ["agents", "validate"])
    assert result.exit_code == 0, result.output
    assert "1 opus / 37 sonnet / 81 haiku" in result.output
    assert "valid: 0 error(s)" in result.output


def test_validate_a_broken_folder_names_file_line_field_and_fix(tmp_path: Path) -> None:
    folder = tmp_path / "ours"
    write_agent(folder, "good-dev")
    write_agent(folder, "bad-dev", tools="Read, Sword")
    result = runner.invoke(app, ["agents", "validate", str(folder)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert f"{folder / 'bad-dev.md'}:4: tools: unknown tool 'Sword'" in out
    assert "fix: use Claude Code tool names" in out
    assert "(not enforced)" in out


def test_export_then_reexport_and_refusal(tmp_path: Path) -> None:
    dest = tmp_path / ".claude" / "agents"
    first = runner.invoke(app, ["agents", "export", "--format", "claude-code", str(dest)])
    assert first.exit_code == 0, first.output
    assert "119 written" in first.output
    header = (dest / "chief-architect.md").read_text().split("---\n")[1]
    assert set(yaml.safe_load(header)) == {"name", "description", "tools", "model"}
    again = runner.invoke(app, ["agents", "export", str(dest)])
    assert "0 written, 119 unchanged" in again.output
    (dest / "go-developer.md").write_text("my own go agent\n")
    refused = runner.invoke(app, ["agents", "export", str(dest)])
    assert refused.exit_code == 2 and "--force" in refused.output
    assert (dest / "go-developer.md").read_text() == "my own go agent\n"
    forced = runner.invoke(app, ["agents", "export", str(dest), "--force"])
    assert forced.exit_code == 0 and "1 written" in forced.output
    wrong = runner.invoke(app, ["agents", "export", "--format", "cursor", str(dest)])
    assert wrong.exit_code == 2


def test_import_copies_into_the_configured_folder_and_the_roster_grows(tmp_path: Path) -> None:
    source = tmp_path / "team-agents"
    write_agent(source, "ledger-dev", specialties="[ledgers, python, accounting]")
    result = runner.invoke(app, ["agents", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".orchestra" / "agents" / "ledger-dev.md").is_file()
    listed = json.loads(runner.invoke(app, ["agents", "list", "--json"]).output)
    assert len(listed) == 120


def test_import_refuses_bad_files_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "team-agents"
    write_agent(source, "fine-dev")
    write_agent(source, "go-developer")  # a built-in name
    result = runner.invoke(app, ["agents", "import", str(source)])
    assert result.exit_code == 2
    assert "is already used by" in result.output and "nothing was changed" in result.output
    assert not (tmp_path / ".orchestra" / "agents").exists()
