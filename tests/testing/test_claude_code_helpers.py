"""Finding the Claude Code CLI and the offline environment it runs in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestra.testing.claude_code import CLOSED_PROXY, find_claude_code, offline_env


def test_offline_env_reaches_only_the_base_url(tmp_path: Path) -> None:
    env = offline_env("http://127.0.0.1:4000", tmp_path, ORCHESTRA_HOME="/x")
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000"
    assert env["HOME"] == str(tmp_path)
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == CLOSED_PROXY
    assert env["NO_PROXY"] == "127.0.0.1,localhost"
    assert env["ORCHESTRA_HOME"] == "/x"
    # Nothing from the caller's environment but PATH: no real credential leaks in.
    assert set(env) - {"PATH", "ORCHESTRA_HOME"} == {
        "HOME",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_API_KEY",
        "DISABLE_AUTOUPDATER",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
    }
    assert env["ANTHROPIC_API_KEY"] == "test-key"


def test_find_claude_code_looks_in_extra_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("sys.prefix", str(tmp_path / "venv"))
    assert find_claude_code(tmp_path) is None
    binary = tmp_path / "claude"
    binary.write_text("#!/bin/sh\n")
    assert find_claude_code(tmp_path) is None  # present but not executable
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    assert find_claude_code(tmp_path) == str(binary)
    assert os.access(str(binary), os.X_OK)
