"""orchestra insight through the Typer runner: import payloads, kpis --json, show --drill-down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.store import Database
from tests.analytics.fixtures import T0, deployment_status, pull_request, sqlite_database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: what these tests check does not depend on the backend (the formulas'
    golden fixtures run on both)."""
    database = sqlite_database(tmp_path)
    yield database
    database.dispose()


runner = CliRunner()


def test_import_then_kpis_and_drill_down(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = str(db.engine.url)
    prs = tmp_path / "prs.json"
    prs.write_text(json.dumps([pull_request(1, merged=T0 + timedelta(hours=5), sha="a" * 40)]))
    deploys = tmp_path / "deploys.json"
    deploys.write_text(
        json.dumps(deployment_status(1, "a" * 40, "success", T0 + timedelta(hours=7)))
    )
    args = ["insight", "import", "payloads", "github", "pull_request", str(prs), "--database", url]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {"payloads": 1, "new": 1, "records": 1}
    again = runner.invoke(app, [*args, "--json"])
    assert json.loads(again.output)["new"] == 0  # idempotent
    runner.invoke(
        app,
        [
            "insight",
            "import",
            "payloads",
            "github",
            "deployment_status",
            str(deploys),
            "--database",
            url,
        ],
    )
    kpis = runner.invoke(
        app, ["insight", "kpis", "--period", "2026-11", "--as", "root", "--database", url, "--json"]
    )
    assert kpis.exit_code == 0, kpis.output
    data = json.loads(kpis.output)
    assert data["kpis"]["lead_time_for_changes"]["value"] == 7.0
    assert data["kpis"]["time_to_restore"]["value"] is None
    assert data["kpis"]["time_to_restore"]["definition"]["unknown_when"]
    shown = runner.invoke(
        app,
        [
            "insight",
            "show",
            "cycle_time",
            "--drill-down",
            "--period",
            "2026-11",
            "--as",
            "root",
            "--database",
            url,
        ],
    )
    assert shown.exit_code == 0, shown.output
    assert "5.00 hours" in shown.output and "change:github:acme/shop#1" in shown.output


def test_refusals_exit_2(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = str(db.engine.url)
    hidden = runner.invoke(
        app, ["insight", "kpis", "--unit", "alice", "--as", "bob", "--database", url]
    )
    assert hidden.exit_code == 2 and "may not see" in hidden.output
    assert runner.invoke(app, ["insight", "show", "nope", "--database", url]).exit_code == 2
    bad = runner.invoke(app, ["insight", "kpis", "--period", "someday", "--database", url])
    assert bad.exit_code == 2 and "fix:" in bad.output


def test_check_then_alerts_ack_and_history(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from tests.analytics.test_warnings import _rising_errors

    monkeypatch.chdir(tmp_path)
    url = str(db.engine.url)
    # errors rising over the ten days up to yesterday (the check looks back from now)
    shift = datetime.now(UTC) - (T0 + timedelta(days=14))
    _rising_errors(db, shift=shift)
    checked = runner.invoke(
        app, ["insight", "check", "--unit", "payments", "--database", url, "--json"]
    )
    assert checked.exit_code == 0, checked.output
    (alert,) = json.loads(checked.output)
    assert (alert["indicator"], alert["state"]) == ("gateway_error_rate", "open")
    listed = runner.invoke(app, ["insight", "alerts", "list", "--database", url])
    assert alert["id"] in listed.output
    acked = runner.invoke(
        app, ["insight", "alerts", "ack", alert["id"], "--as", "lead", "--database", url]
    )
    assert acked.exit_code == 0 and "acknowledged by lead" in acked.output
    history = runner.invoke(
        app, ["insight", "alerts", "history", alert["id"], "--database", url, "--json"]
    )
    assert [e["event"] for e in json.loads(history.output)] == ["opened", "acknowledged"]
    missing = runner.invoke(app, ["insight", "alerts", "resolve", "nope", "--database", url])
    assert missing.exit_code == 2 and "no alert" in missing.output
