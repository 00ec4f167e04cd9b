"""Exit codes and error output, the same for every command (docs/cli.md): a user's error
prints ``error:`` and ``fix:`` on stderr and exits 2; a run that failed or was stopped by
its budget exits 1 (tests/cli/test_engine.py runs one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.errors import OrchestraError

runner = CliRunner()

BAD_CONFIG = "gateway:\n  port: not-a-port\n"


def _text(output: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(output.split())


# One user's error per command module: (module, argv from the test's folder, a phrase of the
# message). Each is fixed by the user: a name, an option, a file or a missing first step.
def _cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    bad = tmp / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    (tmp / "orchestra.yaml").write_text("version: 1\n")
    db = f"sqlite:///{tmp / 'org.db'}"
    return [
        ("config", ["init"], "already exists"),
        ("config", ["config", "check", "--config", str(tmp / "missing.yaml")], "missing.yaml"),
        ("org", ["org", "show", "--database", db], "no organisation stored yet"),
        ("org", ["org", "sync", "--config", str(bad), "--database", db], "gateway.port"),
        ("agents", ["agents", "export", str(tmp / "out"), "--format", "zip"], "unknown format"),
        ("agents", ["agents", "list", "--config", str(bad)], "gateway.port"),
        ("gateway", ["keys", "revoke", "key_nope"], "no key with id"),
        ("gateway", ["budgets", "remove", "nope"], "no budget named"),
        ("serve", ["gateway", "--config", str(bad)], "gateway.port"),
        ("kb", ["kb", "add", "text", "--kind", "rumour", "--store", str(tmp / "kb")], "kind"),
        ("engine", ["status", "run-nope"], "no Orchestra database at"),
        ("engine", ["run", "a task", "--repo", str(tmp)], "not a git repository"),
    ]


CASE_IDS = [
    "config-init-exists",
    "config-check-missing-file",
    "org-show-before-sync",
    "org-sync-bad-config",
    "agents-unknown-format",
    "agents-bad-config",
    "keys-unknown-id",
    "budgets-unknown-name",
    "gateway-bad-config",
    "kb-unknown-kind",
    "engine-nothing-recorded",
    "engine-not-a-repository",
]


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_a_users_error_prints_error_and_fix_on_stderr_and_exits_2(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _module, argv, phrase = _cases(tmp_path)[index]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = _text(result.stderr)
    assert err.startswith("error:"), result.stderr
    assert phrase in err
    assert "fix:" in err
    assert "Traceback" not in result.output


def test_a_check_that_finds_errors_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    result = runner.invoke(app, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 1, result.output
    assert "invalid" in result.output


def test_main_prints_an_escaped_error_with_its_fix_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error no command caught still reads as ``error:`` and ``fix:``, exit 2."""
    import orchestra.cli.app
    from orchestra.cli import main

    def raising() -> None:
        raise OrchestraError("bad [name]", hint="use a known one")

    monkeypatch.setattr(orchestra.cli.app, "app", raising)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _text(captured.err) == "error: bad [name] fix: use a known one"
