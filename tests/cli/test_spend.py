from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.accounting import Accounting, Attribution, LedgerEntry
from orchestra.cli.app import app
from orchestra.providers import Usage
from orchestra.store import open_database

runner = CliRunner()


@pytest.fixture(autouse=True)
def _seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", url)
    db = open_database(url)
    acc = Accounting(db, pepper=b"p")
    alice = Attribution(squad="payments", developer="alice", agent="implementer")
    bob = Attribution(squad="search", developer="bob", agent="reviewer")
    acc.ledger.append(
        LedgerEntry(alice, "sonnet", "claude-sonnet-4-5", usage=Usage(10**6, 10**5))
    )  # 4.50
    acc.ledger.append(
        LedgerEntry(bob, "haiku", "claude-haiku-4-5", usage=Usage(10**5, 10**5))
    )  # 0.60
    acc.close()
    db.dispose()


def test_spend_json_by_developer_and_model() -> None:
    result = runner.invoke(app, ["spend", "--by", "developer", "--period", "all", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(r["group"], r["cost_usd"]) for r in data["rows"]] == [("alice", "4.5"), ("bob", "0.6")]
    assert data["total_usd"] == "5.1" and data["total_requests"] == 2
    by_model = json.loads(
        runner.invoke(app, ["spend", "--by", "model", "--period", "today", "--json"]).stdout
    )
    assert {r["group"] for r in by_model["rows"]} == {"claude-sonnet-4-5", "claude-haiku-4-5"}


def test_spend_table() -> None:
    result = runner.invoke(app, ["spend", "--by", "team", "--period", "month"])
    assert result.exit_code == 0
    assert "payments" in result.stdout and "4.50" in result.stdout and "5.10" in result.stdout


def test_bad_options_explain_the_fix() -> None:
    bad_period = runner.invoke(app, ["spend", "--period", "last-year"])
    assert bad_period.exit_code == 2 and "YYYY-MM-DD..YYYY-MM-DD" in bad_period.output
    bad_by = runner.invoke(app, ["spend", "--by", "colour"])
    assert bad_by.exit_code == 2 and "developer" in bad_by.output
