from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")


def _create(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["keys", "create", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_create_list_rotate_revoke() -> None:
    created = _create("--developer", "alice", "--team", "payments", "--admin")
    secret = str(created["secret"])
    key = created["key"]
    assert isinstance(key, dict)
    assert secret.startswith("orc_") and key["admin"] is True and key["team"] == "payments"

    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == [key["id"]]
    assert secret not in listed.stdout  # only the prefix is ever shown again
    assert rows[0]["prefix"] == secret[:12]

    rotated = runner.invoke(app, ["keys", "rotate", str(key["id"]), "--grace", "30m", "--json"])
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert new["secret"] != secret and new["key"]["developer"] == "alice"
    statuses = {
        r["id"]: r["status"]
        for r in json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
    }
    assert statuses == {key["id"]: "rotating", new["key"]["id"]: "active"}

    revoked = runner.invoke(app, ["keys", "revoke", new["key"]["id"]])
    assert revoked.exit_code == 0 and "Revoked" in revoked.stdout
    table = runner.invoke(app, ["keys", "list"])
    assert "revoked" in table.stdout and new["secret"] not in table.stdout


def test_human_output_shows_the_secret_once() -> None:
    result = runner.invoke(app, ["keys", "create", "--developer", "bob"])
    assert result.exit_code == 0
    secrets = re.findall(r"orc_[A-Za-z0-9_-]{40,}", result.stdout)
    assert len(secrets) == 1 and "shown once" in result.stdout


def test_errors_name_the_fix() -> None:
    missing = runner.invoke(app, ["keys", "revoke", "key_nope"])
    assert (
        missing.exit_code == 2
        and "no key with id" in missing.output
        and "keys list" in missing.output
    )
    bad = runner.invoke(app, ["keys", "rotate", "key_nope", "--grace", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output
