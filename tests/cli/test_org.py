"""`orchestra org sync|show|stage` through the CLI, on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.accounting import AuditLog
from orchestra.cli.app import app
from orchestra.store import open_database
from tests.org.test_tree import ORG

runner = CliRunner()


def test_sync_show_and_resync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRA_DEVELOPER", "dee")  # the admin
    config = tmp_path / "orchestra.yaml"
    config.write_text(ORG)
    db = f"sqlite:///{tmp_path / 'org.db'}"
    empty = runner.invoke(app, ["org", "show", "--database", db])
    assert empty.exit_code == 2 and "orchestra org sync" in empty.output

    synced = runner.invoke(app, ["org", "sync", "--config", str(config), "--database", db])
    assert synced.exit_code == 0, synced.output
    assert "synced: 12 added, 0 updated, 0 removed" in synced.output

    shown = runner.invoke(app, ["org", "show", "--database", db])
    assert shown.exit_code == 0
    for text in ("acme", "platform", "payments", "checkout", "ana (lead)", "python-guild"):
        assert text in shown.output
    tree = json.loads(runner.invoke(app, ["org", "show", "--database", db, "--json"]).output)
    assert tree["headcount"] == 4
    assert tree["units"][0]["units"][0]["units"][0]["name"] == "checkout"

    again = runner.invoke(app, ["org", "sync", "--config", str(config), "--database", db, "--json"])
    assert json.loads(again.output) == {"added": [], "updated": [], "removed": []}

    # The change was audited once (the no-op resync wrote nothing), as the developer.
    entries = AuditLog(open_database(db)).list(action="org.")
    assert [(e.actor, e.action) for e in entries] == [("developer:dee", "org.sync")]


def test_org_sync_needs_an_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "orchestra.yaml"
    config.write_text(ORG)
    db = f"sqlite:///{tmp_path / 'org.db'}"
    monkeypatch.setenv("ORCHESTRA_DEVELOPER", "ana")  # a lead
    refused = runner.invoke(app, ["org", "sync", "--config", str(config), "--database", db])
    assert refused.exit_code == 2
    assert "developer:ana (lead) may not manage_org" in refused.output
    monkeypatch.setenv("ORCHESTRA_DEVELOPER", "zed")
    unknown = runner.invoke(app, ["org", "sync", "--config", str(config), "--database", db])
    assert unknown.exit_code == 2 and "'zed'" in unknown.output


def test_sync_with_a_cycle_fails_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "orchestra.yaml"
    config.write_text(
        "organisation:\n  units:\n"
        "    - {name: a, kind: tribe, parent: b}\n"
        "    - {name: b, kind: tribe, parent: a}\n"
    )
    db = f"sqlite:///{tmp_path / 'org.db'}"
    result = runner.invoke(app, ["org", "sync", "--config", str(config), "--database", db])
    assert result.exit_code == 2
    assert "cycle: a -> b -> a" in result.output
    assert "break the cycle" in result.output
    assert runner.invoke(app, ["org", "show", "--database", db]).exit_code == 2


def test_stage_json_and_pinned_warning(tmp_path: Path) -> None:
    config = tmp_path / "orchestra.yaml"
    config.write_text("organisation:\n  stage: enterprise\n")
    result = runner.invoke(app, ["org", "stage", "--config", str(config), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["stage"]["name"] == "enterprise" and data["by_headcount"] == "individual"
    assert data["stage"]["max_concurrent_agents"] == 1000
    assert data["agent_allocation"] == 201
    assert data["next"] is None
    assert "remove `stage:`" in data["warnings"][0]
    text = runner.invoke(app, ["org", "stage", "--config", str(config)]).output
    assert "warning" in text and "this is the last stage" in text
