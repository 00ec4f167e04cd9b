from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.store import open_database
from orchestra.store.tables.gateway import GatewayAuditEntry, GatewayAuditHead

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


def _checkpoint() -> Path:
    [path] = (Path(os.environ["ORCHESTRA_HOME"]) / "audit-checkpoints").glob("*.json")
    return path


def test_the_newest_entry_removed_with_the_head_is_caught_by_checkpoint_and_anchor(
    url: str, tmp_path: Path
) -> None:
    for dev in ("alice", "bob", "carol"):
        assert runner.invoke(app, ["keys", "create", "--developer", dev]).exit_code == 0
    anchor = tmp_path / "anchor.json"
    exported = runner.invoke(app, ["audit", "anchor", "--output", str(anchor)])
    assert exported.exit_code == 0 and "entry 3" in exported.stdout
    printed = json.loads(runner.invoke(app, ["audit", "anchor"]).stdout)
    assert printed == json.loads(anchor.read_text())
    ok = runner.invoke(app, ["audit", "verify", "--anchor", str(anchor)])
    assert ok.exit_code == 0 and "3 entries verified" in ok.stdout and "anchor" in ok.stdout
    db = open_database(url)
    with db.session() as s:
        s.execute(delete(GatewayAuditEntry).where(GatewayAuditEntry.seq == 3))
        s.execute(delete(GatewayAuditHead))
    db.dispose()
    broken = runner.invoke(app, ["audit", "verify", "--json"])
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["first_bad_index"] == 3
    assert "removed" in json.loads(broken.stdout)["reason"]
    _checkpoint().unlink()  # the intruder found the checkpoint too, and rebuilt a head
    db = open_database(url)
    with db.session() as s:
        second = s.get(GatewayAuditEntry, 2)
        assert second is not None
        s.add(GatewayAuditHead(id=1, last_seq=2, last_hash=second.entry_hash))
    db.dispose()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0  # nothing inside knows
    caught = runner.invoke(app, ["audit", "verify", "--anchor", str(anchor)])
    assert caught.exit_code == 1 and "records entry 3" in caught.output


def test_key_changes_fail_without_their_audit_entry_until_resealed(url: str) -> None:
    assert runner.invoke(app, ["keys", "create", "--developer", "alice"]).exit_code == 0
    db = open_database(url)
    with db.session() as s:
        s.execute(delete(GatewayAuditHead))
    db.dispose()
    refused = runner.invoke(app, ["keys", "create", "--developer", "mallory", "--admin"])
    assert refused.exit_code == 2
    said = " ".join(refused.output.split())
    assert "head row is missing" in said and "orchestra audit reseal" in said
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    assert [k["developer"] for k in listed] == ["alice"]
    resealed = runner.invoke(app, ["audit", "reseal"])
    assert resealed.exit_code == 0 and "Resealed" in resealed.stdout
    assert runner.invoke(app, ["keys", "create", "--developer", "bob"]).exit_code == 0
    actions = [
        e["action"] for e in json.loads(runner.invoke(app, ["audit", "list", "--json"]).stdout)
    ]
    assert actions == ["key.create", "audit.reseal", "key.create"]


def test_an_anchor_file_that_is_not_one_is_refused_with_a_fix(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "anchor.json"
    bad.write_text("{}")
    result = runner.invoke(app, ["audit", "verify", "--anchor", str(bad)])
    assert result.exit_code == 2 and "not an audit anchor file" in result.output
    assert "orchestra audit anchor" in result.output
