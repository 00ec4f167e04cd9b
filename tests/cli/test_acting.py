"""Mutating commands act as the configured developer: their role is checked, and the audit
log names them (not the OS user)."""

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
    - {name: payments, kind: tribe}
    - {name: squad-a, kind: squad, parent: payments}
    - {name: squad-b, kind: squad, parent: payments}
  developers:
    - {name: root, role: admin}
    - {name: lena, unit: squad-a, role: lead}
    - {name: vic, unit: squad-b, role: viewer}
"""


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    (tmp_path / "orchestra.yaml").write_text(ORG)


def _as(who: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> object:
    monkeypatch.setenv("ORCHESTRA_DEVELOPER", who)
    return runner.invoke(app, list(args))


def test_roles_decide_and_the_audit_names_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    viewer = _as("vic", monkeypatch, "keys", "create", "--developer", "vic", "--team", "squad-b")
    assert viewer.exit_code == 2  # type: ignore[attr-defined]
    assert "developer:vic (viewer) may not manage_keys" in viewer.output  # type: ignore[attr-defined]
    inside = _as(
        "lena",
        monkeypatch,
        "budgets",
        "set",
        "a",
        "--scope",
        "team",
        "--subject",
        "squad-a",
        "--cap",
        "5",
    )
    assert inside.exit_code == 0, inside.output  # type: ignore[attr-defined]
    outside = _as(
        "lena",
        monkeypatch,
        "budgets",
        "set",
        "b",
        "--scope",
        "team",
        "--subject",
        "squad-b",
        "--cap",
        "5",
    )
    assert outside.exit_code == 2  # type: ignore[attr-defined]
    assert "leads payments/squad-a" in outside.output  # type: ignore[attr-defined]
    admin = _as("root", monkeypatch, "keys", "create", "--developer", "vic", "--team", "squad-b")
    assert admin.exit_code == 0, admin.output  # type: ignore[attr-defined]
    audit = json.loads(runner.invoke(app, ["audit", "list", "--json"]).stdout)
    actors = {(e["actor"], e["action"]) for e in audit}
    assert ("developer:lena", "budget.set") in actors
    assert ("developer:root", "key.create") in actors
    assert not any(a.startswith("cli:") for a, _ in actors)


def test_several_developers_and_no_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRA_DEVELOPER", raising=False)
    result = runner.invoke(app, ["keys", "create", "--developer", "vic"])
    assert result.exit_code == 2
    assert "ORCHESTRA_DEVELOPER" in result.output
