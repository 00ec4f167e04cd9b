from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from orchestra.accounting import SecretBox, SecretError, SecretStore


def test_key_file_is_created_private_and_secrets_are_encrypted_at_rest(tmp_path: Path) -> None:
    box = SecretBox.from_home(tmp_path)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    store = SecretStore(box, tmp_path / "secrets.json")
    store.set("anthropic", "sk-ant-api03-very-secret")
    assert "very-secret" not in (tmp_path / "secrets.json").read_text()
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    again = SecretStore(SecretBox.from_home(tmp_path), tmp_path / "secrets.json")
    assert again.get("anthropic") == "sk-ant-api03-very-secret"
    assert again.names() == ["anthropic"] and "very-secret" not in repr(box)
    assert again.delete("anthropic") and again.names() == []


def test_wrong_key_or_loose_permissions_fail_without_showing_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SecretStore(SecretBox.from_home(tmp_path), tmp_path / "s.json")
    store.set("openai", "sk-live-abc123")
    monkeypatch.setenv("ORCHESTRA_SECRET_KEY", Fernet.generate_key().decode())
    other = SecretStore(SecretBox.from_home(tmp_path), tmp_path / "s.json")
    with pytest.raises(SecretError) as err:
        other.get("openai")
    assert "sk-live" not in str(err.value) and err.value.hint
    with pytest.raises(SecretError, match="no stored secret"):
        other.get("missing")
    monkeypatch.setenv("ORCHESTRA_SECRET_KEY", "not-a-key")
    with pytest.raises(SecretError, match="Fernet"):
        SecretBox.from_home(tmp_path)
    monkeypatch.delenv("ORCHESTRA_SECRET_KEY")
    (tmp_path / "secret.key").chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        SecretBox.from_home(tmp_path)


def test_cli_stores_lists_and_removes_without_ever_printing_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from orchestra.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    stored = runner.invoke(app, ["secrets", "set", "anthropic"], input="sk-ant-api03-topsecret\n")
    assert stored.exit_code == 0, stored.output
    assert "topsecret" not in stored.output
    listed = runner.invoke(app, ["secrets", "list", "--json"])
    assert json.loads(listed.stdout) == ["anthropic"]
    store = SecretStore(SecretBox.from_home(tmp_path / "home"), tmp_path / "home" / "secrets.json")
    creds = store.as_mapping()
    assert creds["anthropic"] == "sk-ant-api03-topsecret" and "topsecret" not in repr(creds)
    with pytest.raises(KeyError):
        creds["openai"]
    audit = runner.invoke(app, ["audit", "list", "--json"])
    assert [e["action"] for e in json.loads(audit.stdout)] == ["secret.set"]
    assert "topsecret" not in audit.stdout
    assert runner.invoke(app, ["secrets", "set", "bad name"], input="x\n").exit_code == 2
    assert runner.invoke(app, ["secrets", "set", "empty"], input="\n").exit_code == 2
    assert runner.invoke(app, ["secrets", "remove", "anthropic"]).exit_code == 0
    missing = runner.invoke(app, ["secrets", "remove", "anthropic"])
    assert missing.exit_code == 2 and "secrets list" in missing.output
