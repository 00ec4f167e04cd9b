"""Keys and budgets for developers or units the organisation does not have are refused,
with the close matches named, and nothing is written (CLI through the Typer runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app

runner = CliRunner()

ORG = """
organisation:
  name: acme
  units:
    - {name: payments, kind: squad}
  developers:
    - {name: alice, unit: payments, role: admin}  # the CLI acts as her: she may manage keys
"""


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    (tmp_path / "orchestra.yaml").write_text(ORG)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_key_for_an_unknown_developer_or_team_is_refused() -> None:
    refused = runner.invoke(app, ["keys", "create", "--developer", "alcie"])
    assert refused.exit_code == 2
    assert "no developer 'alcie' in the organisation; did you mean alice?" in _flat(refused.output)
    team = runner.invoke(app, ["keys", "create", "--developer", "alice", "--team", "paymnets"])
    assert team.exit_code == 2 and "did you mean payments?" in _flat(team.output)
    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert json.loads(listed.stdout) == []  # nothing half-applied
    audit = runner.invoke(app, ["audit", "list", "--json"])
    assert "key.create" not in audit.stdout
    ok = runner.invoke(app, ["keys", "create", "--developer", "alice", "--team", "payments"])
    assert ok.exit_code == 0, ok.output


def test_a_budget_for_an_unknown_subject_is_refused() -> None:
    args = ["budgets", "set", "b1", "--scope", "team", "--subject", "paymnts", "--cap", "10"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "did you mean payments?" in _flat(refused.output)
    listed = runner.invoke(app, ["budgets", "list", "--json"])
    assert "b1" not in listed.stdout
    args[6] = "payments"
    assert runner.invoke(app, args).exit_code == 0
