"""`orchestra init`, `orchestra config check`, and the first-run sequence, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app

runner = CliRunner()


def test_init_then_check_then_stage_work_in_an_empty_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    init = runner.invoke(app, ["init"])
    assert init.exit_code == 0, init.output
    assert (tmp_path / "orchestra.yaml").is_file()
    check = runner.invoke(app, ["config", "check"])
    assert check.exit_code == 0, check.output
    assert "valid — 0 error(s), 1 warning(s)" in check.output
    assert "ANTHROPIC_API_KEY is not set" in check.output
    stage = runner.invoke(app, ["org", "stage"])
    assert stage.exit_code == 0, stage.output
    assert "stage: individual" in stage.output
    assert "next stage: small_team" in stage.output


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orchestra.yaml").write_text("version: 1\n")
    refused = runner.invoke(app, ["init"])
    assert refused.exit_code == 2
    assert "already exists" in refused.output and "--force" in refused.output
    assert (tmp_path / "orchestra.yaml").read_text() == "version: 1\n"
    forced = runner.invoke(app, ["init", "--force"])
    assert forced.exit_code == 0
    assert "providers:" in (tmp_path / "orchestra.yaml").read_text()


def test_check_lists_every_error_with_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "providers: {}\n"
        "models:\n"
        "  m: {provider: gone}\n"
        "tiers:\n"
        "  opus: {model: nothing}\n"
        "  mega: {model: m}\n"
        "organisation:\n"
        "  developers: [{name: a}, {name: a}]\n"
    )
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())  # undo wrapping
    for expected in (
        f"{path}:3: models.m.provider: model 'm' names missing provider 'gone'",
        f"{path}:5: tiers.opus.model: tier 'opus' maps to unknown model 'nothing'",
        f"{path}:6: tiers.mega: unknown tier 'mega'",
        f"{path}:8: organisation.developers.1.name: developer 'a' is listed twice",
        "invalid — 4 error(s), 0 warning(s)",
    ):
        assert expected in out, result.output
    assert out.count("fix: ") == 4


def test_check_json_and_no_secret_in_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-ant-api03-abcdefSECRET"
    monkeypatch.setenv("MY_KEY", secret)
    path = tmp_path / "o.yaml"
    path.write_text(
        "providers:\n  a: {kind: anthropic, base_url: 'https://x', api_key_env: MY_KEY}\n"
    )
    result = runner.invoke(app, ["config", "check", "--config", str(path), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True and data["problems"] == []
    assert secret not in result.output
