from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.store import open_database
from orchestra.store.tables.gateway import GatewayAuditEntry

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    value = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", value)
    return value


def test_management_actions_are_listed_and_verified(url: str) -> None:
    assert runner.invoke(app, ["keys", "create", "--developer", "alice"]).exit_code == 0
    budget = runner.invoke(
        app,
        [
            "budgets",
            "set",
            "team-cap",
            "--scope",
            "team",
            "--subject",
            "payments",
            "--cap",
            "250",
            "--period",
            "week",
        ],
    )
    assert budget.exit_code == 0, budget.output
    listed = json.loads(runner.invoke(app, ["audit", "list", "--json"]).stdout)
    assert [e["action"] for e in listed] == ["budget.set", "key.create"]
    assert listed[0]["details"]["cap_usd"] == "250"
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "2 entries verified" in ok.stdout


def test_verify_fails_and_names_a_tampered_entry(url: str) -> None:
    for dev in ("alice", "bob", "carol"):
        assert runner.invoke(app, ["keys", "create", "--developer", dev]).exit_code == 0
    db = open_database(url)
    with db.session() as s:
        s.execute(
            update(GatewayAuditEntry).where(GatewayAuditEntry.seq == 2).values(actor="cli:mallory")
        )
    db.dispose()
    result = runner.invoke(app, ["audit", "verify", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data == {"ok": False, "checked": 1, "first_bad_index": 2, "reason": data["reason"]}
    assert "entry 2" in data["reason"]


def test_budgets_list_and_invalid_budget(url: str) -> None:
    bad = runner.invoke(
        app, ["budgets", "set", "x", "--scope", "planet", "--subject", "a", "--cap", "1"]
    )
    assert bad.exit_code == 2 and "developer, team, org, run" in bad.output
    runner.invoke(
        app, ["budgets", "set", "dev", "--scope", "developer", "--subject", "alice", "--cap", "5"]
    )
    rows = json.loads(runner.invoke(app, ["budgets", "list", "--json"]).stdout)
    assert rows[0]["name"] == "dev" and rows[0]["remaining_usd"] == "5"
    removed = runner.invoke(app, ["budgets", "remove", "dev"])
    assert removed.exit_code == 0
    assert json.loads(runner.invoke(app, ["budgets", "list", "--json"]).stdout) == []
